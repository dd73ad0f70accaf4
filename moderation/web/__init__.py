"""The Gradio page: `page` wires the widgets, `actions` is what each button does (plain
Python), `panel` draws the verdicts, `endpoints` adds /chat and /moderate, `assets` holds
the CSS and script, `space` the ZeroGPU decorator, `server` launches it all."""

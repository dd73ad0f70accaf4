"""The models' official chat templates, verbatim from their tokenizer_config.json
(see shared/llama-formats.md). Test vectors only: our code never renders with these
strings itself, it is compared against them."""

LLAMA3_INSTRUCT = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

LLAMA_GUARD_2 = (
    "{% if messages|length % 2 == 0 %}{% set role = 'Agent' %}{% else %}{% set role = 'User' %}"
    '{% endif %}{{ "[INST] Task: Check if there is unsafe content in \'" + role + "\' messages in '
    "conversations according our safety policy with the below categories.\\n\\n<BEGIN UNSAFE "
    "CONTENT CATEGORIES>\\nS1: Violent Crimes. \\nS2: Non-Violent Crimes. \\nS3: Sex Crimes. \\n"
    "S4: Child Exploitation. \\nS5: Specialized Advice. \\nS6: Privacy. \\nS7: Intellectual "
    "Property. \\nS8: Indiscriminate Weapons. \\nS9: Hate. \\nS10: Self-Harm. \\nS11: Sexual "
    'Content. \\n<END UNSAFE CONTENT CATEGORIES>\\n\\n<BEGIN CONVERSATION>\\n\\n" }}'
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% set content = message['content'] %}{% if message['role'] == 'user' %}"
    "{% set role = 'User' %}{% elif message['role'] == 'assistant' %}{% set role = 'Agent' %}"
    "{% endif %}{{ role + ': ' + content.strip() + '\\n\\n' }}{% endfor %}{{ \"<END "
    'CONVERSATION>\\n\\nProvide your safety assessment for ONLY THE LAST " + role + " message in '
    "the above conversation:\\n - First line must read 'safe' or 'unsafe'.\\n - If unsafe, a "
    'second line must include a comma-separated list of violated categories. [/INST]" }}'
)

# meta-llama/Llama-Guard-3-8B tokenizer_config.json (also -8B-INT8). Note its quirks: a space
# before <|begin_of_text|>, category lines without the trailing space of Guard 2, shorter
# names than the model card (Sex Crimes, Child Exploitation, Self-Harm), and no "\n\n" after
# the final assistant header (the model writes those itself).
LLAMA_GUARD_3 = (
    "{% if messages|length % 2 == 0 %}{% set role = 'Agent' %}{% else %}{% set role = 'User' %}{% endif %}"
    '{{ " <|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n'
    "Task: Check if there is unsafe content in '\" + role + \"' messages in conversations according our "
    "safety policy with the below categories.\\n\\n"
    "<BEGIN UNSAFE CONTENT CATEGORIES>\\n"
    "S1: Violent Crimes.\\nS2: Non-Violent Crimes.\\nS3: Sex Crimes.\\nS4: Child Exploitation.\\n"
    "S5: Defamation.\\nS6: Specialized Advice.\\nS7: Privacy.\\nS8: Intellectual Property.\\n"
    "S9: Indiscriminate Weapons.\\nS10: Hate.\\nS11: Self-Harm.\\nS12: Sexual Content.\\n"
    "S13: Elections.\\nS14: Code Interpreter Abuse.\\n"
    '<END UNSAFE CONTENT CATEGORIES>\\n\\n<BEGIN CONVERSATION>\\n\\n" }}'
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% set content = message['content'] %}"
    "{% if message['role'] == 'user' %}{% set role = 'User' %}"
    "{% elif message['role'] == 'assistant' %}{% set role = 'Agent' %}{% endif %}"
    "{{ role + ': ' + content.strip() + '\\n\\n' }}{% endfor %}"
    '{{ "<END CONVERSATION>\\n\\nProvide your safety assessment for ONLY THE LAST " + role + " message in '
    "the above conversation:\\n - First line must read 'safe' or 'unsafe'.\\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories."
    '<|eot_id|><|start_header_id|>assistant<|end_header_id|>" }}'
)

"""`{{variables}}` in a prompt's content: names of letters, digits, `_`, `-` and `.`, spaces
around them allowed (`{{ topic }}`); each named once, in order of first use."""

import re

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.-]{0,63})\s*\}\}")


def variables_of(content: str) -> list[str]:
    return list(dict.fromkeys(match.group(1) for match in VARIABLE.finditer(content)))

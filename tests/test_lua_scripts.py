"""Static checks of every Lua script of every service: keys, headers and reply shapes.

Redis Cluster routes a script by the keys it declares, so a script may touch only keys
that arrive in `KEYS`; a reader needs to know what each `KEYS[i]` is and what comes back.
For every `lua/*.lua` of every package in the repository this test reads the source (with its
`--!include` files pasted in, as Redis sees it) and checks, without running it, that:

- the header (the opening comment) names every `KEYS[i]` and `ARGV[i]` the code uses,
  one key per line with its name after it, exactly `KEYS[1]`..`KEYS[N]` for `name-N.lua`,
  and says what it returns and which clock it uses;
- the key argument of every `redis.call`/`redis.pcall` is `KEYS[...]`, or a local
  assigned directly from one (`local hold = KEYS[1]`, `for _, k in ipairs(KEYS)`);
- every `return` of a script's main chunk sends named fields: a table constructor
  `{"name", value, ...}`, a `cjson.encode(...)`, or a variable built elsewhere (those
  are read with `vaccine_queue.lua.Reply` by the stores, whose tests run every script).

The checks read tokens, not a Lua grammar: simple on purpose, and strict where unsure.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from vaccine_queue.lua import script_source

ROOT = Path(__file__).resolve().parent.parent
# Every package of the repository that has Lua scripts: a new service's are checked too.
PACKAGES = tuple(sorted(folder.parent.name for folder in ROOT.glob("*/lua")
                        if (folder.parent / "__init__.py").is_file()))
# Packages whose scripts are still being converted (their tests run, failures expected).
CONVERTING: dict[str, str] = {}
# Commands whose first argument is not a key (all others take a key first).
KEYLESS = frozenset({"TIME", "PING", "ECHO"})
# Commands whose every argument is a key, and those taking two keys first.
ALL_KEYS = frozenset({"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH"})
TWO_KEYS = frozenset({"RENAME", "RENAMENX", "SMOVE", "RPOPLPUSH", "LMOVE", "COPY"})
# Tokens that end a `return` statement (Lua allows it only as a block's last statement).
BLOCK_END = frozenset({"end", "else", "elseif", "until", ";"})

_TOKEN = re.compile(
    r"""
    (?P<comment>--\[(?P<ceq>=*)\[.*?\](?P=ceq)\]|--[^\n]*)
    |(?P<string>\[(?P<seq>=*)\[.*?\](?P=seq)\]|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
    |(?P<name>[A-Za-z_][A-Za-z_0-9]*)
    |(?P<number>0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+)
    |(?P<op>\.\.\.|\.\.|==|~=|<=|>=|[-+*/%^\#<>=(){}\[\];:,.])
    |(?P<space>\s+)
    """,
    re.DOTALL | re.VERBOSE,
)
_HEADER_KEY = re.compile(r"\b(KEYS|ARGV)\[(\d+)(?:\.\.(\d+|n)?)?\]")
_SCRIPT_NAME = re.compile(r"^[a-z_]+-(\d+|n)\.lua$")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # name | string | number | op
    text: str
    line: int


def tokens(source: str) -> list[Token]:
    """Lua tokens without comments and white space."""
    found: list[Token] = []
    at, line = 0, 1
    while at < len(source):
        match = _TOKEN.match(source, at)
        if match is None:
            raise AssertionError(f"line {line}: cannot read {source[at:at + 20]!r}")
        kind = match.lastgroup or ""
        if kind in ("ceq", "seq"):  # the group of a long bracket's level, not a token kind
            kind = "comment" if match.group("comment") else "string"
        if kind not in ("comment", "space"):
            found.append(Token(kind, match.group(), line))
        line += match.group().count("\n")
        at = match.end()
    return found


def _closing(toks: list[Token], start: int) -> int:
    """Index of the bracket closing the one at `start`."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    depth = 0
    for i in range(start, len(toks)):
        if toks[i].kind != "op":
            continue
        if toks[i].text in pairs:
            depth += 1
        elif toks[i].text in pairs.values():
            depth -= 1
            if depth == 0:
                return i
    raise AssertionError(f"line {toks[start].line}: unbalanced {toks[start].text!r}")


def _split(toks: list[Token]) -> list[list[Token]]:
    """Comma-separated items at bracket depth 0."""
    items: list[list[Token]] = [[]]
    depth = 0
    for tok in toks:
        if tok.kind == "op" and tok.text in ("(", "[", "{"):
            depth += 1
        elif tok.kind == "op" and tok.text in (")", "]", "}"):
            depth -= 1
        if depth == 0 and tok.kind == "op" and tok.text == ",":
            items.append([])
        else:
            items[-1].append(tok)
    if not items[-1]:
        items.pop()  # nothing, or a trailing separator (Lua allows `{a, b,}`)
    return items


def _is_keys_item(item: list[Token]) -> bool:
    """`KEYS[<anything>]` and nothing after it."""
    return (len(item) >= 4 and item[0].text == "KEYS" and item[1].text == "["
            and _closing(item, 1) == len(item) - 1)


def _text(item: list[Token]) -> str:
    return " ".join(tok.text for tok in item)


def key_aliases(toks: list[Token]) -> set[str]:
    """Names only ever assigned directly from `KEYS[...]` (or iterating over KEYS)."""
    good: set[str] = set()
    bad: set[str] = set()
    for i, tok in enumerate(toks):
        if tok.kind == "name" and tok.text == "for":
            names: list[str] = []
            j = i + 1
            while toks[j].kind == "name" or toks[j].text == ",":
                if toks[j].kind == "name" and toks[j].text != "in":
                    names.append(toks[j].text)
                if toks[j].text == "in":
                    break
                j += 1
            over = [t.text for t in toks[j + 1:j + 5]]
            if over[1:] == ["(", "KEYS", ")"] and over[0] in ("ipairs", "pairs"):
                good.update(names[1:2])
            continue
        if not (tok.kind == "op" and tok.text == "="):
            continue
        targets: list[str] = []
        j = i - 1
        while j >= 0 and toks[j].kind == "name":
            targets.insert(0, toks[j].text)
            if j == 0 or toks[j - 1].text != ",":
                break
            j -= 2
        if j > 0 and toks[j - 1].kind == "op" and toks[j - 1].text in (".", "[", ":"):
            continue  # a field (t.x = ...), not a local
        k = i + 1
        for target in targets:
            end = _closing(toks, k + 1) if toks[k].text == "KEYS" and toks[k + 1].text == "[" \
                else -1
            follows = toks[end + 1] if 0 <= end < len(toks) - 1 else None
            plain = end >= 0 and (follows is None or follows.text in (",", ";") or (
                follows.kind == "name" and follows.text not in ("and", "or")))
            (good if plain else bad).add(target)
            if not plain or follows is None or follows.text != ",":
                bad.update(targets[targets.index(target) + 1:])
                break
            k = end + 2
    return good - bad


@dataclass(frozen=True, slots=True)
class Script:
    package: str
    name: str
    own: str  # the file as written
    expanded: str  # with its includes pasted in, as Redis runs it

    @property
    def header(self) -> list[str]:
        """The opening comment's lines."""
        lines: list[str] = []
        for line in self.own.splitlines():
            if line.startswith("--!"):
                continue
            if line.startswith("--"):
                lines.append(line)
            elif line.strip():
                break
        return lines


def scripts(package: str) -> list[Script]:
    folder = importlib.resources.files(package).joinpath("lua")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".lua"))
    return [Script(package, name, folder.joinpath(name).read_text(encoding="utf-8"),
                   script_source(package, name)) for name in names]


def _declared(header: list[str], what: str) -> tuple[set[int], bool]:
    """Indices of `what` (KEYS or ARGV) the header names, and whether an open range
    (`ARGV[4..]`, `KEYS[1..n]`) names all the rest."""
    named: set[int] = set()
    open_range = False
    for line in header:
        for match in _HEADER_KEY.finditer(line):
            if match.group(1) != what:
                continue
            first, last = int(match.group(2)), match.group(3)
            if last is None and "..]" not in match.group():
                named.add(first)
            elif last is None or last == "n":
                named.add(first)
                open_range = True
            else:
                named.update(range(first, int(last) + 1))
    return named, open_range


def _used(toks: list[Token], what: str) -> tuple[set[int], list[str]]:
    """Literal indices of `what` in the code, and the computed ones (as text)."""
    literal: set[int] = set()
    computed: list[str] = []
    for i, tok in enumerate(toks[:-1]):
        if tok.text == what and toks[i + 1].text == "[":
            inside = toks[i + 2:_closing(toks, i + 1)]
            if len(inside) == 1 and inside[0].kind == "number":
                literal.add(int(inside[0].text))
            else:
                computed.append(_text(inside))
    return literal, computed


def header_problems(script: Script) -> list[str]:
    """What the header of `script` fails to say about its keys, arguments and reply."""
    problems: list[str] = []
    header = script.header
    toks = tokens(script.expanded if not script.name.startswith("_") else script.own)
    for what in ("KEYS", "ARGV"):
        named, open_range = _declared(header, what)
        literal, computed = _used(toks, what)
        missing = {i for i in literal - named if not (open_range and i > max(named, default=0))}
        if missing:
            problems.append(f"{what}{sorted(missing)} used but not named in the header")
        if computed and not named:
            problems.append(f"{what}[{computed[0]}] used, but the header names no {what}")
    for line in header:
        for match in _HEADER_KEY.finditer(line):
            if match.group(1) == "KEYS" and not line[match.end():].strip(" -:"):
                problems.append(f"{match.group()} has no name after it in the header")
    if script.name.startswith("_"):
        return problems
    count = _SCRIPT_NAME.match(script.name)
    if count is None:
        problems.append("name is not <what>-<number of keys | n>.lua")
    else:
        named, open_range = _declared(header, "KEYS")
        if count.group(1) == "n":
            if not open_range:
                problems.append("a -n script names its keys with an open range, KEYS[i..n]")
        elif named != set(range(1, int(count.group(1)) + 1)) or open_range:
            problems.append(f"header names KEYS{sorted(named)}, the file name says "
                            f"{count.group(1)} keys")
    text = "\n".join(header)
    if "Returns" not in text:
        problems.append("header does not say what it Returns")
    if "clock" not in text.lower():
        problems.append("header does not say which clock the script uses")
    return problems


def key_problems(script: Script) -> list[str]:
    """Every redis.call/pcall whose key argument does not come from KEYS."""
    toks = tokens(script.expanded)
    aliases = key_aliases(toks)
    problems: list[str] = []

    def is_key(item: list[Token]) -> bool:
        if _is_keys_item(item):
            return True
        if len(item) == 1 and item[0].kind == "name" and item[0].text in aliases:
            return True
        # unpack(KEYS) / unpack(KEYS, i, j): keys straight from KEYS
        texts = [t.text for t in item]
        return texts[:3] == ["unpack", "(", "KEYS"] or texts[:5] == [
            "table", ".", "unpack", "(", "KEYS"]

    for i, tok in enumerate(toks[:-3]):
        if not (tok.text == "redis" and toks[i + 1].text == "."
                and toks[i + 2].text in ("call", "pcall") and toks[i + 3].text == "("):
            continue
        args = _split(toks[i + 4:_closing(toks, i + 3)])
        if not args or len(args[0]) != 1 or args[0][0].kind != "string":
            problems.append(f"line {tok.line}: the command is not a literal string")
            continue
        command = args[0][0].text.strip("'\"").upper()
        if command in KEYLESS or len(args) == 1:
            continue
        keys = args[2:] if command == "BITOP" else args[1:] if command in ALL_KEYS \
            else args[1:3] if command in TWO_KEYS else args[1:2]  # BITOP op dest src...
        problems += [f"line {tok.line}: {command} on {_text(key)!r}, not a KEYS[i]"
                     for key in keys if not is_key(key)]
    return problems


def return_problems(script: Script) -> list[str]:
    """`return`s of the main chunk that do not send named fields."""
    toks = tokens(script.own)
    problems: list[str] = []
    blocks: list[str] = []
    for i, tok in enumerate(toks):
        if tok.kind != "name":
            continue
        if tok.text in ("function", "if", "do", "repeat"):
            blocks.append(tok.text)
        elif tok.text in ("end", "until"):
            blocks.pop()
        elif tok.text == "return" and "function" not in blocks:
            end = i + 1
            while end < len(toks) and toks[end].text not in BLOCK_END:
                end = _closing(toks, end) + 1 if toks[end].text in ("(", "[", "{") else end + 1
            value = toks[i + 1:end]
            problems += [f"line {tok.line}: {p}" for p in _reply_problems(value)]
    return problems


def _reply_problems(value: list[Token]) -> list[str]:
    if not value:
        return ["returns nothing (nil), not named fields"]
    if [t.text for t in value[:4]] == ["cjson", ".", "encode", "("]:
        return []
    if len(value) == 1 and value[0].kind == "name" and value[0].text not in ("true", "false",
                                                                            "nil"):
        return []  # a table built above: its shape is checked where the store reads it
    if value[0].text != "{" or _closing(value, 0) != len(value) - 1:
        return [f"returns {_text(value)!r}, not named fields"]
    items = _split(value[1:-1])
    problems = [f"field name {_text(name)!r} is not a string literal" for name in items[0::2]
                if len(name) != 1 or name[0].kind != "string"]
    if problems or not items or len(items) % 2:
        problems.append(f"returns {len(items)} values, not name/value pairs: "
                        f"{_text(value)[:60]!r}")
    return problems


def test_the_gates_scripts_are_checked() -> None:
    # The booking backend has no Lua any more: its data lives in PostgreSQL.
    assert "queue_gate" in PACKAGES and "booking_backend" not in PACKAGES


def _cases() -> list[object]:
    cases: list[object] = []
    for package in PACKAGES:
        marks = [pytest.mark.xfail(reason=CONVERTING[package], strict=False)] \
            if package in CONVERTING else []
        cases += [pytest.param(script, id=f"{package}/{script.name}", marks=marks)
                  for script in scripts(package)]
    return cases


@pytest.mark.parametrize("script", _cases())
def test_header_names_keys_arguments_reply_and_clock(script: Script) -> None:
    assert header_problems(script) == []


@pytest.mark.parametrize("script", _cases())
def test_every_key_comes_from_keys(script: Script) -> None:
    if script.name.startswith("_"):
        pytest.skip("checked inside each script that includes it (aliases live there)")
    assert key_problems(script) == []


@pytest.mark.parametrize("script", _cases())
def test_every_return_sends_named_fields(script: Script) -> None:
    if script.name.startswith("_"):
        pytest.skip("shared helpers: their returns go to the script, not to Redis")
    assert return_problems(script) == []


def test_the_checks_catch_what_they_are_for() -> None:
    """The checker itself: each rule rejects a script that breaks it."""
    bad = Script("x", "bad-1.lua", "", """
local P = ARGV[1]
local hold = KEYS[1]
local built = KEYS[1] .. ':x'
redis.call('HGET', P .. 'free', 'x')
redis.call('HGET', hold, 'x')
redis.call('HGET', built, 'x')
redis.call('RENAME', KEYS[1], ARGV[2])
local t = redis.call('TIME')
if t then return {'ok', 1, 2} end
if not t then return 1 end
local function helper() return true end
return {outcome = 'ok'}
""")
    assert key_problems(bad) == [
        "line 5: HGET on \"P .. 'free'\", not a KEYS[i]",
        "line 7: HGET on 'built', not a KEYS[i]",
        "line 8: RENAME on 'ARGV [ 2 ]', not a KEYS[i]",
    ]
    assert return_problems(Script("x", "bad-1.lua", bad.expanded, "")) == [
        "line 10: field name '2' is not a string literal",
        "line 10: returns 3 values, not name/value pairs: \"{ 'ok' , 1 , 2 }\"",
        "line 11: returns '1', not named fields",
        "line 13: field name \"outcome = 'ok'\" is not a string literal",
        "line 13: returns 1 values, not name/value pairs: \"{ outcome = 'ok' }\"",
    ]
    headed = Script("x", "bad-2.lua", "-- bad-2.lua\n-- KEYS[1]  qg:{room}:x\n-- KEYS[3]\n"
                    + bad.expanded, bad.expanded)
    assert header_problems(headed) == [
        "ARGV[1, 2] used but not named in the header",
        "KEYS[3] has no name after it in the header",
        "header names KEYS[1, 3], the file name says 2 keys",
        "header does not say what it Returns",
        "header does not say which clock the script uses",
    ]

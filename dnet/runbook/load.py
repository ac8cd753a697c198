"""Read a runbook file and bind it to an inventory and `-p` values; every problem at FILE:LINE:COL."""
from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dnet.errors import DnetError, InventoryError, Problem
from dnet.inventory.limit import select
from dnet.inventory.loader import validation_problem
from dnet.inventory.schema import Inventory
from dnet.inventory.yamlpos import Positions, _YamlProblems, load_with_positions
from dnet.runbook.actions import ACTIONS
from dnet.runbook.conditions import CONDITIONS, ConditionArgs
from dnet.runbook.model import FILTERS, REF, Param, Runbook, Step, filters, python_file, refs, substitute

Where = tuple[Any, ...]


@dataclass(frozen=True)
class LoadedRunbook:
    """A valid runbook, its file, and where each of its keys sits."""

    book: Runbook
    path: str
    keys: Positions
    values: Positions

    def at(self, path: Where, message: str) -> Problem:
        while path and path not in self.values:
            path = path[:-1]
        line, col = self.keys.get(path) or self.values.get(path, (1, 1))
        return Problem(line, col, message, self.path)


@dataclass(frozen=True)
class BoundStep:
    """A step with its parameters filled in: the hosts it targets and its checked arguments."""

    index: int  # 1-based
    step: Step
    targets: list[str]
    args: BaseModel | None
    text: str  # the shell command or python reference, parameters filled in
    serial: int | None = None


def find(name: str, search: list[Path]) -> Path:
    """A runbook path as given, else NAME(.yml) in each folder of `search`."""
    p = Path(name)
    if p.is_file():
        return p
    for folder in search:
        for cand in (folder / name, folder / f"{name}.yml", folder / f"{name}.yaml"):
            if cand.is_file():
                return cand
    shipped = sorted({c.stem for f in search if f.is_dir() for c in f.glob("*.yml")})
    raise DnetError(f"no runbook '{name}': give a file path" + (f" or one of: {', '.join(shipped)}" if shipped else ""))


def _yaml(path: Path, what: str) -> tuple[Any, Positions, Positions]:
    """A YAML file's data with its positions; every problem at FILE:LINE:COL."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError([Problem(1, 1, f"cannot read the {what}: {exc}", str(path))]) from None
    try:
        return load_with_positions(text, str(path))
    except _YamlProblems as exc:
        raise InventoryError(exc.problems) from None


def load(path: Path, shipped: Path | None = None) -> LoadedRunbook:
    name = str(path)
    data, keys, values = _yaml(path, "runbook")
    if isinstance(data, list) and any(isinstance(p, dict) and ("hosts" in p or "tasks" in p or "import_playbook" in p)
                                      for p in data):
        own = shipped / path.name if shipped else None
        raise InventoryError([Problem(1, 1, "this is an Ansible playbook (a list of plays), not a dnet runbook"
                                      + (f"; dnet's own '{path.stem}' is {own}: run it by that path"
                                         if own and own.is_file() else "")
                                      + "; a dnet runbook is a mapping with 'name' and 'steps'", name)])
    if not isinstance(data, dict):
        raise InventoryError([Problem(1, 1, "a runbook is a mapping with 'name' and 'steps'", name)])
    try:
        book = Runbook.model_validate(data)
    except ValidationError as exc:
        problems = [validation_problem(e, keys, values, name, Runbook) for e in exc.errors()]
        partial, indexes = _partial(data)  # every problem in one run: the meaning of what did validate, too
        problems += _check(LoadedRunbook(partial, name, keys, values), indexes)
        raise InventoryError(sorted(set(problems))) from None
    loaded = LoadedRunbook(book, name, keys, values)
    problems = _check(loaded)
    if problems:
        raise InventoryError(problems)
    return loaded


def _partial(data: dict[str, Any]) -> tuple[Runbook, list[int]]:
    """The parameters and steps that validate on their own, and each step's place in the file."""
    params: dict[str, Param] = {}
    for k, v in (data.get("params") or {}).items() if isinstance(data.get("params"), dict) else []:
        with contextlib.suppress(ValidationError):
            params[str(k)] = Param.model_validate(v)
    steps: list[Step] = []
    indexes: list[int] = []
    for i, raw in enumerate(data.get("steps") or [] if isinstance(data.get("steps"), list) else []):
        with contextlib.suppress(ValidationError):
            steps.append(Step.model_validate(raw))
            indexes.append(i)
    return Runbook.model_construct(name=str(data.get("name", "")), description="", params=params, steps=steps), indexes


def _check(lr: LoadedRunbook, indexes: list[int] | None = None) -> list[Problem]:
    book, out = lr.book, []
    seen: dict[str, int] = {}
    for pos, st in enumerate(book.steps):
        i = indexes[pos] if indexes is not None else pos
        here: Where = ("steps", i)
        if st.name in seen:
            out.append(lr.at((*here, "name"), f"step name '{st.name}' is used by step {seen[st.name]} too; "
                                              "names must be unique (--from takes them)"))
        seen.setdefault(st.name, i + 1)
        kinds = [k for k in ("action", "shell", "python") if getattr(st, k) is not None]
        if len(kinds) != 1:
            out.append(lr.at(here, f"step '{st.name}' needs exactly one of action, shell, python"
                                   + (f" (it has {', '.join(kinds)})" if kinds else "")))
            continue
        for ref in refs(st.model_dump(by_alias=True)):
            if ref not in book.params:
                out.append(lr.at(here, f"step '{st.name}' uses {{{{ {ref} }}}} but the runbook declares no such "
                                       f"parameter{_near(ref, list(book.params))} (params: "
                                       f"{', '.join(book.params) or 'none'})"))
        for f in filters(st.model_dump(by_alias=True)):
            if f not in FILTERS:
                out.append(lr.at(here, f"step '{st.name}' uses the filter '| {f}'; the only filter is '| raw' "
                                       "(the value unquoted)"))
        for where, text in (((*here, "shell"), st.shell), ((*here, "with", "command"), st.args.get("command"))):
            if isinstance(text, str) and (inside := quoted_refs(text)):
                out.append(lr.at(where, f"{{{{ {inside[0]} }}}} stands inside quotes, but dnet already quotes every "
                                        "value for the shell: remove the quotes around it (or write "
                                        f"{{{{ {inside[0]} | raw }}}} to insert the text unquoted)"))
        if st.action is not None:
            out += _check_action(lr, i, st)
        elif st.args:
            out.append(lr.at((*here, "with"), "'with' gives arguments to an action; a shell or python step takes "
                                              "none"))
        if st.python is not None:
            out += _check_python(lr, i, st.python)
    for name, p in book.params.items():
        if p.default is not None and _convert(name, p.type, p.default, None) is None:
            out.append(lr.at(("params", name, "default"), f"the default of '{name}' is no {p.type}"))
    return out


def _near(name: str, choices: list[str]) -> str:
    """"; did you mean 'x'?" for a close match, else ""."""
    near = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean '{near[0]}'?" if near else ""


def _check_action(lr: LoadedRunbook, i: int, st: Step) -> list[Problem]:
    here: Where = ("steps", i)
    action = st.action or ""
    if action not in ACTIONS:
        near = difflib.get_close_matches(action, list(ACTIONS), n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else f"actions: {', '.join(sorted(ACTIONS))}"
        return [lr.at((*here, "action"), f"unknown action '{action}'; {hint}")]
    out = []
    found = ACTIONS[action]
    model = found.args
    if model is None and st.args:
        out.append(lr.at((*here, "with"), f"action '{action}' takes no arguments"))
    elif model is not None:
        literal = {k: v for k, v in st.args.items() if not refs(v)}  # {{ param }} values are checked when bound
        out += _args_problems(lr, i, model, literal)
    if found.needs_hosts and not st.hosts:
        out.append(lr.at(here, f"action '{action}' needs 'hosts' (a host, group, role or {{{{ param }}}})"))
    cond = st.args.get("condition")
    if model is ConditionArgs and isinstance(cond, str) and cond in CONDITIONS and not CONDITIONS[cond].swarm_wide \
            and not st.hosts:
        out.append(lr.at((*here, "with", "condition"), f"condition '{cond}' is about hosts: give the step 'hosts'"))
    if cond == "shell" and not st.args.get("command"):
        out.append(lr.at((*here, "with", "condition"), "condition 'shell' needs 'command' (it holds when the command "
                                                       "exits 0 on every target)"))
    return out


def _args_problems(lr: LoadedRunbook, i: int, model: type[BaseModel], args: dict[str, Any],
                   partial: bool = True) -> list[Problem]:
    """Problems of an action's arguments. Partial (before binding): missing keys are left for binding, where a
    {{ param }} may have filled them."""
    try:
        model.model_validate(args)
    except ValidationError as exc:
        base = ("steps", i, "with")
        return [validation_problem({**e, "loc": base + tuple(e["loc"])}, lr.keys, lr.values, lr.path, Runbook)
                for e in exc.errors() if not (partial and e["type"] == "missing")]
    return []


def quoted_refs(text: str) -> list[str]:
    """Names of {{ refs }} (not | raw) that stand inside shell quotes, where a quoted value would keep its quotes."""
    starts = {m.start(): m for m in REF.finditer(text)}
    found: list[str] = []
    state, i = "", 0
    while i < len(text):
        c = text[i]
        if i in starts and state and starts[i][2] != "raw":
            found.append(starts[i][1])
        if c == "\\" and state != "'":
            i += 2
            continue
        if state == "" and c in "'\"":
            state = c
        elif c == state:
            state = ""
        i += 1
    return found


def _check_python(lr: LoadedRunbook, i: int, ref: str) -> list[Problem]:
    where = ("steps", i, "python")
    file, _, func = ref.rpartition(":")
    if refs(ref):
        return [lr.at(where, "python: takes no {{ param }} (the file to load is fixed by the runbook); the function "
                             "reads parameters from ctx.params")]
    if not file.endswith(".py") or not func.isidentifier():
        return [lr.at(where, f"python: '{ref}' should be FILE.py:FUNCTION")]
    path = python_file(lr.path, ref)
    if path is None:
        return [lr.at(where, f"python: '{file}' is outside the runbook's folder ({Path(lr.path).resolve().parent}); "
                             "keep the file beside the runbook or below it")]
    if not path.is_file():
        return [lr.at(where, f"python: no file '{file}' next to the runbook ({Path(lr.path).parent})")]
    return []


def _convert(name: str, kind: str, value: Any, inv: Inventory | None) -> Any:
    """A parameter value as its type, or None when it is not one."""
    text = str(value).strip()
    if kind == "int":
        return int(text) if text.lstrip("-").isdigit() else None
    if kind == "bool":
        low = text.lower()
        return True if low in ("true", "yes", "1", "on") else False if low in ("false", "no", "0", "off") else None
    if kind == "host" and inv is not None:
        return text if text in inv.hosts else None
    return text


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    """-p NAME=VALUE pairs. An error never echoes what was given (it may be a secret typed without its name)."""
    out: dict[str, str] = {}
    for n, p in enumerate(pairs, 1):
        key, eq, value = p.partition("=")
        if not eq or not key.strip():
            raise DnetError(f"-p (the {_nth(n)} one): write -p NAME=VALUE (what was given is not shown: it may be "
                            "a secret)")
        out[key.strip()] = value
    return out


def _nth(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def read_param_file(path: str) -> dict[str, str]:
    """--param-file: a YAML mapping of parameter names to scalar values (like Ansible's -e @FILE)."""
    data, _keys, values = _yaml(Path(path), "parameter file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError([Problem(1, 1, "a parameter file is a mapping of names to values (name: value)", path)])
    out: dict[str, str] = {}
    bad = []
    for k, v in data.items():
        if isinstance(v, (dict, list)) or v is None:
            line, col = values.get((k,), (1, 1))
            bad.append(Problem(line, col, f"'{k}' needs a single value (text, a number or true/false)", path))
        else:
            out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    if bad:
        raise InventoryError(bad)
    return out


def bind(lr: LoadedRunbook, inv: Inventory, given: dict[str, str]) -> tuple[dict[str, Any], list[BoundStep]]:
    """Fill in parameters (the -p values, else defaults) and resolve every step's hosts against the inventory."""
    book = lr.book
    unknown = [k for k in given if k not in book.params]
    if unknown:
        raise DnetError(f"-p {unknown[0]}: runbook '{book.name}' has no such parameter"
                        f"{_near(unknown[0], list(book.params))} (params: {', '.join(book.params) or 'none'})")
    params: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, p in book.params.items():
        if name in given:
            value = _convert(name, p.type, given[name], inv)
            if value is None:
                kinds = {"int": "a whole number", "bool": "true or false"}
                what = (f"one of the inventory's hosts ({', '.join(inv.hosts)})" if p.type == "host"
                        else kinds.get(p.type, "text"))
                shown = "***" if p.secret else given[name]
                raise DnetError(f"-p {name}={shown}: {name} must be {what}")
            params[name] = value
        elif p.default is not None:
            params[name] = _convert(name, p.type, p.default, None)
        else:
            problems.append(lr.at(("params", name), f"parameter '{name}' is required: pass -p {name}=VALUE"
                                                    + (f" ({p.description})" if p.description else "")))
    if problems:
        raise InventoryError(problems)
    steps = []
    for i, st in enumerate(book.steps):
        steps.append(_bind_step(lr, i, st, params, inv, problems))
    if problems:
        raise InventoryError(problems)
    return params, steps


def _bind_step(lr: LoadedRunbook, i: int, st: Step, params: dict[str, Any], inv: Inventory,
               problems: list[Problem]) -> BoundStep:
    targets: list[str] = []
    if st.hosts:
        spec = str(substitute(st.hosts, params))
        try:
            targets = list(inv.hosts) if spec.strip() == "all" else select(inv, spec)
        except DnetError as exc:
            problems.append(lr.at(("steps", i, "hosts"), str(exc).replace("--limit", "hosts", 1)))
    elif st.action is None or not ACTIONS[st.action].swarm_wide:
        targets = list(inv.hosts)
    args: BaseModel | None = None
    model = ACTIONS[st.action].args if st.action else None
    if model is not None:
        filled = {k: substitute(v, params, shell=k == "command") for k, v in st.args.items()}
        found = _args_problems(lr, i, model, filled, partial=False)
        problems += found
        if not found:
            args = model.model_validate(filled)
    text = str(substitute(st.shell, params, shell=True)) if st.shell is not None else st.python or ""
    serial = substitute(st.serial, params)
    if serial is not None and (not isinstance(serial, int) or isinstance(serial, bool) or serial < 1):
        problems.append(lr.at(("steps", i, "serial"), f"serial must be a number of at least 1 (got {serial!r})"))
        serial = None
    return BoundStep(i + 1, st, targets, args, text, serial)

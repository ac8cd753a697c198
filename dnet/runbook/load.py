"""Read a runbook file and bind it to an inventory and `-p` values; every problem at FILE:LINE:COL."""
from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dnet.errors import DnetError, InventoryError, Problem
from dnet.inventory.limit import select
from dnet.inventory.loader import validation_problem
from dnet.inventory.schema import Inventory
from dnet.inventory.yamlpos import Positions, _YamlProblems, load_with_positions
from dnet.runbook import template
from dnet.runbook.actions import ACTIONS
from dnet.runbook.conditions import CONDITIONS, ConditionArgs
from dnet.runbook.model import Param, Runbook, Step, python_file, refs, substitute

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

    index: int  # 1-based (a rescue or always step: its parent's)
    step: Step
    targets: list[str]
    args: BaseModel | None
    text: str  # the shell command or python reference, parameters filled in
    serial: int | None = None
    where: Where = ()  # the step's place in the file: ("steps", 2) or ("steps", 2, "rescue", 0)
    deferred: bool = False  # uses registered results: bound when it runs
    rescue: tuple[BoundStep, ...] = ()
    always: tuple[BoundStep, ...] = ()

    @property
    def label(self) -> str:
        """How the step is numbered in output: 3, or 3.rescue.1 for a step's rescue, rescue.1 for the run's."""
        if len(self.where) <= 2:
            return str(self.index) if self.where[:1] != ("rescue",) and self.where[:1] != ("always",) \
                else f"{self.where[0]}.{self.where[1] + 1}"
        return f"{self.index}.{self.where[2]}.{self.where[3] + 1}"


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


def walk(book: Runbook, indexes: list[int] | None = None) -> list[tuple[Where, Step]]:
    """Every step with its place in the file, in the order they may run: each step, then its rescue and always;
    the run's own rescue and always last."""
    out: list[tuple[Where, Step]] = []
    for pos, st in enumerate(book.steps):
        i = indexes[pos] if indexes is not None else pos
        out.append((("steps", i), st))
        out += [(("steps", i, part, j), sub) for part in ("rescue", "always")
                for j, sub in enumerate(getattr(st, part))]
    out += [((part, j), sub) for part in ("rescue", "always") for j, sub in enumerate(getattr(book, part))]
    return out


KINDS = ("action", "shell", "python", "pause")


def _check(lr: LoadedRunbook, indexes: list[int] | None = None) -> list[Problem]:
    book, out = lr.book, []
    seen: dict[str, str] = {}
    known = set(book.params)
    for here, st in walk(book, indexes):
        label = str(here[1] + 1) if here[0] == "steps" and len(here) == 2 else ".".join(map(str, here))
        if st.name in seen:
            out.append(lr.at((*here, "name"), f"step name '{st.name}' is used by step {seen[st.name]} too; "
                                              "names must be unique (--from takes them)"))
        seen.setdefault(st.name, label)
        if len(here) > 2 and (st.rescue or st.always):
            out.append(lr.at((*here, "rescue" if st.rescue else "always"),
                             f"step '{st.name}' is itself a rescue or always step: it cannot have its own"))
        kinds = [k for k in KINDS if getattr(st, k) is not None]
        if len(kinds) != 1:
            out.append(lr.at(here, f"step '{st.name}' needs exactly one of action, shell, python, pause"
                                   + (f" (it has {', '.join(kinds)})" if kinds else "")))
            continue
        out += _check_templates(lr, here, st, known)
        if st.register_as and st.kind not in ("shell", "python"):
            out.append(lr.at((*here, "register"), f"step '{st.name}': register keeps a shell or python step's "
                                                  "results; an action reports its own"))
        if st.register_as in book.params:
            out.append(lr.at((*here, "register"), f"step '{st.name}' registers '{st.register_as}', which is a "
                                                  "parameter's name: choose another"))
        if st.action is not None:
            out += _check_action(lr, here, st)
        elif st.args:
            out.append(lr.at((*here, "with"), "'with' gives arguments to an action; a shell, python or pause step "
                                              "takes none"))
        if st.python is not None:
            out += _check_python(lr, here, st.python)
        if isinstance(st.when, str):
            out += _check_when(lr, here, st, known)
        if st.register_as:
            known.add(st.register_as)
        if len(here) == 2 and here[0] == "steps":  # a later step may use what this one's rescue registered
            known |= {sub.register_as for sub in (*st.rescue, *st.always) if sub.register_as}
    if book.connect:
        for name in template.names(book.connect):
            if name not in book.params:
                out.append(lr.at(("connect",), f"connect uses {{{{ {name} }}}} but the runbook declares no such "
                                               "parameter"))
    for name, p in book.params.items():
        if p.default is not None and _convert(name, p.type, p.default, None) is None:
            out.append(lr.at(("params", name, "default"), f"the default of '{name}' is no {p.type}"))
    return out


def _check_templates(lr: LoadedRunbook, here: Where, st: Step, known: set[str]) -> list[Problem]:
    out = []
    data = st.model_dump(by_alias=True, exclude={"rescue", "always", "when"})
    for field, value in data.items():
        for text in _strings(value):
            why = template.problem(text)
            if why:
                missing = re.search(r"No filter named '([^']+)'", why)
                if missing:
                    out.append(lr.at((*here, field), f"step '{st.name}' uses the filter '| {missing[1]}', which "
                                                     "does not exist; filters: raw (the value unquoted) and "
                                                     "Jinja2's own (default, lower, upper, join, replace, ...)"))
                else:
                    out.append(lr.at((*here, field), f"step '{st.name}': {why}"))
                continue
            for ref in sorted(template.names(text) - known):
                out.append(lr.at(here, f"step '{st.name}' uses {{{{ {ref} }}}} but the runbook declares no such "
                                       f"parameter{_near(ref, sorted(known))} (params: "
                                       f"{', '.join(lr.book.params) or 'none'}"
                                       + (f"; registered before it: {', '.join(sorted(known - set(lr.book.params)))}"
                                          if known - set(lr.book.params) else "") + ")"))
    shells: list[tuple[Where, Any]] = [((*here, "shell"), st.shell),
                                       ((*here, "with", "command"), st.args.get("command"))]
    for where, text in shells:
        if isinstance(text, str) and (inside := quoted_refs(text)):
            out.append(lr.at(where, f"{{{{ {inside[0]} }}}} stands inside quotes, but dnet already quotes every "
                                    "value for the shell: remove the quotes around it (or write "
                                    f"{{{{ {inside[0]} | raw }}}} to insert the text unquoted)"))
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [t for v in value for t in _strings(v)]
    return []


def _check_when(lr: LoadedRunbook, here: Where, st: Step, known: set[str]) -> list[Problem]:
    text = str(st.when).strip()
    cond = condition_of(text)
    if cond is not None:
        if not CONDITIONS[cond].swarm_wide and not st.hosts:
            return [lr.at((*here, "when"), f"condition '{cond}' is about hosts: give the step 'hosts'")]
        return []
    expr = template.whole(text) or text
    try:
        used = template.expression_names(expr)
        template.PLAIN.compile_expression(expr)
    except template.TemplateError as exc:
        near = _near(text.removeprefix("not ").strip(), list(CONDITIONS))
        return [lr.at((*here, "when"), f"step '{st.name}': when: '{text}' is neither a condition name nor an "
                                       f"expression ({exc.message or exc}){near}")]
    return [lr.at((*here, "when"), f"step '{st.name}': when: uses '{n}', which is no parameter or result registered "
                                   f"before this step{_near(n, sorted(known))}") for n in sorted(used - known)]


def condition_of(text: str) -> str | None:
    """The condition a `when:` names (`in-swarm`, `not in-swarm`), or None for an expression."""
    name = text.strip().removeprefix("not ").strip()
    return name if name in CONDITIONS else None


def _near(name: str, choices: list[str]) -> str:
    """"; did you mean 'x'?" for a close match, else ""."""
    near = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean '{near[0]}'?" if near else ""


def _check_action(lr: LoadedRunbook, here: Where, st: Step) -> list[Problem]:
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
        out += _args_problems(lr, here, model, literal)
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


def _args_problems(lr: LoadedRunbook, here: Where, model: type[BaseModel], args: dict[str, Any],
                   partial: bool = True) -> list[Problem]:
    """Problems of an action's arguments. Partial (before binding): missing keys are left for binding, where a
    {{ param }} may have filled them."""
    try:
        model.model_validate(args)
    except ValidationError as exc:
        base = (*here, "with")
        return [validation_problem({**e, "loc": base + tuple(e["loc"])}, lr.keys, lr.values, lr.path, Runbook)
                for e in exc.errors() if not (partial and e["type"] == "missing")]
    return []


def quoted_refs(text: str) -> list[str]:
    """Expressions (not | raw) that stand inside shell quotes, where a quoted value would keep its quotes."""
    starts = {m.start(): m for m in template.spans(text)}
    found: list[str] = []
    state, i = "", 0
    while i < len(text):
        c = text[i]
        if i in starts and state and not template.is_raw(starts[i][1]):
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


def _check_python(lr: LoadedRunbook, here: Where, ref: str) -> list[Problem]:
    where = (*here, "python")
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
    steps = [bind_tree(lr, ("steps", i), st, i + 1, params, inv, problems) for i, st in enumerate(book.steps)]
    for part in ("rescue", "always"):
        for j, st in enumerate(getattr(book, part)):
            bind_step(lr, (part, j), st, 0, params, inv, problems)
    if problems:
        raise InventoryError(problems)
    return params, steps


Resolve = Callable[[str], str]  # `leader` or `one-manager` -> a host
SPECIAL = ("leader", "one-manager")


def first_manager(inv: Inventory) -> Resolve:
    """How `leader` and `one-manager` resolve before anything is read: the inventory's first manager."""
    managers = [h for h, spec in inv.hosts.items() if "manager" in spec.roles] or list(inv.hosts)
    return lambda token: managers[0]


def pattern_hosts(inv: Inventory, spec: str, resolve: Resolve) -> list[str]:
    """The hosts of a step's pattern: `leader` and `one-manager` resolved, then as --limit reads it."""
    def swap(m: re.Match[str]) -> str:
        return m[1] + resolve(m[2])

    spec = re.sub(r"(^|[,:&!]\s*)(leader|one-manager)(?=\s*(?:[,:]|$))", swap, spec.strip())
    return list(inv.hosts) if spec == "all" else select(inv, spec)


def bind_tree(lr: LoadedRunbook, where: Where, st: Step, index: int, variables: dict[str, Any], inv: Inventory,
              problems: list[Problem], resolve: Resolve | None = None) -> BoundStep:
    """A step and its rescue and always steps, bound."""
    bs = bind_step(lr, where, st, index, variables, inv, problems, resolve)
    def part(steps: list[Step], name: str) -> tuple[BoundStep, ...]:
        return tuple(bind_step(lr, (*where, name, j), sub, index, variables, inv, problems, resolve)
                     for j, sub in enumerate(steps))

    return replace(bs, rescue=part(st.rescue, "rescue"), always=part(st.always, "always"))


def bind_step(lr: LoadedRunbook, where: Where, st: Step, index: int, variables: dict[str, Any], inv: Inventory,
              problems: list[Problem], resolve: Resolve | None = None) -> BoundStep:
    """One step with `variables` (parameters, and results registered so far) filled in. A step that uses a result
    not registered yet comes back deferred: the run binds it again when it gets there."""
    used = set(refs(st.model_dump(by_alias=True, exclude={"rescue", "always", "when"})))
    if used - set(variables):
        return BoundStep(index, st, [], None, st.shell or st.python or "", None, where, deferred=True)
    try:
        return _bind(lr, where, st, index, variables, inv, problems, resolve or first_manager(inv))
    except template.TemplateError as exc:
        problems.append(lr.at(where, f"step '{st.name}': {exc.message or exc}"))
        return BoundStep(index, st, [], None, "", None, where, deferred=True)


def _bind(lr: LoadedRunbook, where: Where, st: Step, index: int, params: dict[str, Any], inv: Inventory,
          problems: list[Problem], resolve: Resolve) -> BoundStep:
    targets: list[str] = []
    if st.hosts:
        spec = template.plain(substitute(st.hosts, params))
        try:
            targets = pattern_hosts(inv, spec, resolve)
        except DnetError as exc:
            problems.append(lr.at((*where, "hosts"), str(exc).replace("--limit", "hosts", 1)))
    elif st.action is None or not ACTIONS[st.action].swarm_wide:
        targets = [] if st.kind == "pause" else list(inv.hosts)
    if st.run_once:
        targets = targets[:1]
    args: BaseModel | None = None
    model = ACTIONS[st.action].args if st.action else None
    if model is not None:
        filled = {k: substitute(v, params, shell=k == "command") for k, v in st.args.items()}
        found = _args_problems(lr, where, model, filled, partial=False)
        problems += found
        if not found:
            args = model.model_validate(filled)
            found_target = getattr(args, "target", None)
            if found_target:
                from dnet.plan.target import parse
                try:
                    parse([found_target] if isinstance(found_target, str) else found_target, inv)
                except DnetError as exc:
                    problems.append(lr.at((*where, "with", "target"), str(exc).replace("--target", "target", 1)))
    text = (str(substitute(st.shell, params, shell=True)) if st.shell is not None
            else template.plain(substitute(st.pause, params)) if st.pause is not None else st.python or "")
    serial = substitute(st.serial, params)
    if serial is not None and (not isinstance(serial, int) or isinstance(serial, bool) or serial < 1):
        problems.append(lr.at((*where, "serial"), f"serial must be a number of at least 1 (got {serial!r})"))
        serial = None
    return BoundStep(index, st, targets, args, text, serial, where)

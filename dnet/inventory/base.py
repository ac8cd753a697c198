"""The inventory models' base class and the value types every section shares."""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from dnet.inventory.keys import DESCRIPTIONS

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=63)]
LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def _str_labels(value: Any) -> Any:
    if isinstance(value, dict):
        for k in value:
            if isinstance(k, str) and not LABEL_KEY.fullmatch(k):
                raise ValueError(f"label key '{k}' may hold only letters, digits and . _ / - (no commas, '=' or "
                                 "spaces), starting with a letter or digit")
        return {k: (str(v).lower() if isinstance(v, bool) else str(v)) if isinstance(v, (int, float, bool)) else v
                for k, v in value.items()}
    return value


def _command(value: Any) -> Any:
    if isinstance(value, list):
        return [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    return value


class Model(BaseModel):
    """Base: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Attach each field's description from dnet.inventory.keys (kept apart so the models stay short)."""
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for name, info in cls.model_fields.items():
            # a field inherited from a shared base (RunOptions) is described once, under the base's name
            text = next((DESCRIPTIONS[k] for k in (f"{c.__name__}.{name}" for c in cls.__mro__) if k in DESCRIPTIONS),
                        None)
            if text and info.description != text:
                info.description, changed = text, True
        if changed and cls.__pydantic_complete__:
            # deferred models read the descriptions when first built; only a built one needs building again
            cls.model_rebuild(force=True)


Labels = Annotated[dict[str, str], BeforeValidator(_str_labels)]
Command = Annotated[list[str] | str, BeforeValidator(_command)]

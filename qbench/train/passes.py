"""Forward passes per optimizer step during QAT: a method's training cost, measured, not declared.

A plain method runs the quantized model once a step; a KD wrapper adds a pass of the frozen FP
teacher, BWRF a teacher pass and one per mixed-precision model, AdaQAT's allocator probe passes
at lowered bits. Hooks on the student (the quantized model) and on every teacher count the
*outermost* forward calls (a call made inside another counted call, such as BWRF's low-precision
blocks running inside the FP model's forward, is part of that pass) between the first and the
last optimizer step, and the row reports their mean per step. A call counts once however much
of the model it recomputes: BWRF's mixed-precision passes reuse memoised block outputs.

The hooks only count: they change no tensor, so no other number of the row moves.
"""
from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from torch import nn

STUDENT, TEACHER = "student", "teacher"


def teacher_modules(student: nn.Module, holders: Iterable[Any], teacher: nn.Module | None = None) -> list[nn.Module]:
    """The teacher given to the wrapper, and any other model a holder (the training wrapper, the
    allocator) keeps as an attribute, except the student and parts of the student or teacher."""
    inside = {id(m) for m in student.modules()}
    found: list[nn.Module] = []
    if teacher is not None:
        found.append(teacher)
        inside |= {id(m) for m in teacher.modules()}
    for holder in holders:
        for value in vars(holder).values():
            if not isinstance(value, nn.Module) or id(value) in inside:
                continue
            children = list(value.children())
            if children and all(id(c) in inside for c in children):
                continue  # a view onto parts already watched (BWRF's list of low-precision blocks)
            found.append(value)
            inside |= {id(m) for m in value.modules()}
    return found


class PassCounter:
    """Counts outermost forward calls of the student and the teachers while active (a context
    manager), and optimizer steps through :meth:`step`."""

    def __init__(self, student: nn.Module, teachers: Iterable[nn.Module] = ()) -> None:
        self.roles = [(student, STUDENT)] + [(t, TEACHER) for t in teachers]
        self.calls = {STUDENT: 0, TEACHER: 0}
        self.steps = 0
        self._depth = 0
        self._handles: list[Any] = []

    def _pre(self, role: str) -> Any:
        def pre(module: nn.Module, args: Any) -> None:
            if self._depth == 0:
                self.calls[role] += 1
            self._depth += 1
        return pre

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        self._depth -= 1

    def __enter__(self) -> "PassCounter":
        for module, role in self.roles:
            self._handles.append(module.register_forward_pre_hook(self._pre(role)))
            # always_call: a forward that raises still closes its call
            self._handles.append(module.register_forward_hook(self._post, always_call=True))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def step(self) -> None:
        """One optimizer step done."""
        self.steps += 1

    def report(self) -> dict[str, float]:
        """Row fields: ``qat_passes_per_step`` (student and teachers) and
        ``qat_teacher_passes_per_step``; empty before the first step."""
        if not self.steps:
            return {}
        total = self.calls[STUDENT] + self.calls[TEACHER]
        return {"qat_passes_per_step": round(total / self.steps, 4),
                "qat_teacher_passes_per_step": round(self.calls[TEACHER] / self.steps, 4)}

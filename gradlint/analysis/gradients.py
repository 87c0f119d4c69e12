"""The training-loop model: what the `.grad` of each optimizer's parameters holds along one
path through the code, as `backward()`, `step()` and `zero_grad()` run.

PyTorch adds each backward's gradients to `.grad`; only `zero_grad()` (of the optimizer or
of a module holding its parameters) or writing `.grad` clears them; `step()` applies
whatever `.grad` holds. So a step that follows an earlier step with no clear in between
applies the sum of both steps' gradients (GL201), and a step right after a clear that
threw away a backward's gradients applies nothing (GL202).

Loops run twice (interpreter.exec_loop), so a later pass sees what the one before left in
`.grad`. Paths join field by field: a clear or step on one branch only (gradient
accumulation, `if (i + 1) % k == 0: step()`) makes the state UNKNOWN, and rules stay silent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import libcst as cst

from gradlint.analysis.values import NO, UNKNOWN, YES, Tri


@dataclass(frozen=True)
class Grads:
    """The `.grad` of one optimizer's parameters."""

    held: Tri = NO  # a backward's gradients are in .grad (none since the last clear: NO)
    applied: Tri = NO  # a step already applied what .grad holds, and it was not cleared
    unstepped: Tri = NO  # a backward ran since the last step or clear
    recent: Tri = NO  # ... on this pass of the innermost loop
    # The backward that added to gradients a step had already applied.
    piled_by: cst.CSTNode | None = None
    cleared_at: cst.CSTNode | None = None  # the last clear on this path
    wiped: Tri = NO  # that clear threw away a backward's gradients no step had applied
    wiped_recent: Tri = NO  # ... gradients of a backward on this pass
    applied_by: cst.CSTNode | None = None  # the step that applied them
    # On some path, a backward that surely reached these parameters ran since the last step
    # or clear: (a loop on every pass of which it ran, that backward), by id. A may-fact:
    # paths join with `|`.
    pending: frozenset[tuple[int, int]] = frozenset()

    def backward(self, node: cst.CSTNode) -> Grads:
        # The last backward before the step: in a GAN, the generator's own loss.
        return Grads(
            held=YES,
            applied=self.applied,
            unstepped=YES,
            recent=YES,
            piled_by=node if self.applied is YES else self.piled_by,
            cleared_at=self.cleared_at,
            wiped=NO,
            wiped_recent=NO,
            applied_by=self.applied_by,
            pending=self.pending,
        )

    def reached(self, backward: cst.CSTNode, loops: frozenset[int]) -> Grads:
        """A backward surely reached these parameters, on every pass of these loops."""
        added = frozenset((loop, id(backward)) for loop in loops)
        return self if added <= self.pending else replace(self, pending=self.pending | added)

    def other_stepped(self) -> Grads:
        """Another optimizer stepped: the backwards before it were its losses (a
        discriminator's that also reaches the generator), not gradients to sum here."""
        return replace(self, pending=frozenset()) if self.pending else self

    def pending_in(self, loop: cst.CSTNode) -> bool:
        return any(found == id(loop) for found, _ in self.pending)

    def step(self, node: cst.CSTNode) -> Grads:
        return Grads(
            held=self.held,
            applied=self.held,
            unstepped=NO,
            recent=NO,
            piled_by=None,
            cleared_at=self.cleared_at,
            applied_by=node,
        )

    def clear(self, node: cst.CSTNode) -> Grads:
        return Grads(cleared_at=node, wiped=self.unstepped, wiped_recent=self.recent)

    def piles_up(self, step: cst.CSTNode) -> bool:
        """Whether this step would apply again gradients it applied on an earlier run: every
        run of it, not only once where one phase of training hands over to another."""
        return (
            self.applied is YES
            and self.unstepped is YES
            and self.piled_by is not None
            and self.applied_by is step
        )

    @property
    def emptied(self) -> bool:
        """A step now would apply nothing: a clear threw away the last backward's gradients."""
        return self.held is NO and self.wiped is YES and self.cleared_at is not None

    def next_pass(self) -> Grads:
        if self.recent is NO and self.wiped_recent is NO:
            return self
        return Grads(
            self.held,
            self.applied,
            self.unstepped,
            NO,
            self.piled_by,
            self.cleared_at,
            self.wiped,
            NO,
            self.applied_by,
            self.pending,
        )

    def join(self, other: Grads) -> Grads:
        if self == other:
            return self
        return Grads(
            held=self.held.join(other.held),
            applied=self.applied.join(other.applied),
            unstepped=self.unstepped.join(other.unstepped),
            recent=self.recent.join(other.recent),
            piled_by=self.piled_by if self.piled_by is other.piled_by else None,
            cleared_at=self.cleared_at if self.cleared_at is other.cleared_at else None,
            wiped=self.wiped.join(other.wiped),
            wiped_recent=self.wiped_recent.join(other.wiped_recent),
            applied_by=self.applied_by if self.applied_by is other.applied_by else None,
            pending=self.pending | other.pending,
        )


UNKNOWN_GRADS = Grads(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, None, None, UNKNOWN, UNKNOWN, None)


def join_grads(a: dict[int, Grads], b: dict[int, Grads]) -> dict[int, Grads]:
    """Optimizers made on one path only keep what that path knows of them."""
    joined = dict(a)
    for key, grads in b.items():
        joined[key] = joined[key].join(grads) if key in joined else grads
    return joined


def holds_part(roots: frozenset[str], path: str) -> bool:
    """Whether an optimizer over `roots` holds parameters of the module at `path`."""
    return any(
        path == root or path.startswith(root + ".") or root.startswith(path + ".") for root in roots
    )


def owned_by(roots: frozenset[str], path: str) -> Tri:
    """Whether a module at `path` holds every parameter of an optimizer over `roots`: YES,
    NO when it holds none of them, UNKNOWN when that cannot be told."""
    if not roots:
        return UNKNOWN
    inside = [root == path or root.startswith(path + ".") for root in roots]
    if all(inside):
        return YES
    if any(inside) or any(path.startswith(root + ".") for root in roots):
        return UNKNOWN
    return NO

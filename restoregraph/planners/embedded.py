"""The embedded planner (the default): a small plan scorer trained on the pipeline-search data.

The network scores a *completion* -- the ordered tools that would finish the restoration --
given the current image and the history:

    score(c | x, applied) = sum_i  u(c_i | x)                      (model choice)
                          + sum_{i<j} v(c_i before c_j | x)          (order)
                          + sum_{a in applied, i} v(a before c_i | x)

``x`` is the current image's feature vector (:func:`restoregraph.planners.features.image_features`:
the perception CNN's pooled features, image statistics and per-type level probabilities) followed,
for weights trained with it (``meta["perception_input"]``), by the request's perception of what is
still to undo (:func:`restoregraph.planners.features.perception_features`: a level one-hot per
type) and, for weights trained with ``meta["size_input"]``, the whole image's size
(:func:`restoregraph.planners.features.size_features`), projected to a few dimensions; ``u`` and ``v`` are linear in that projection. The weights
hold one ensemble per plan objective (``blob["objectives"]``: balanced, psnr, perceptual); the
request's objective picks it, and one without values plans for the default (the note says so).
``applied`` are the tools already accepted in this run (the history). The pairwise form shares
what it learns about an order ("remove JPEG artefacts before denoising") across every mixture
where both tasks occur, which a per-state Q-network cannot do with a few hundred training images.

Decisions: every completion of the still-needed tasks
(:func:`restoregraph.planners._common.needed_tasks`: perception's types, the user's forbidden and
required tasks) over the allowed tools (never a tool rolled back at that position, a tool outside
the request's toolbox or a forbidden task) is scored -- at most 4! x 3 x 2^3 = 576 candidates,
one batched pass -- and the best one is the plan. Stop (an empty plan) when no task is left.
In ``stepwise`` mode the graph keeps the first step and asks again on the new image, so the
later steps are re-decided on the intermediate image's features. Tasks whose allowed tools are
all outside the network's vocabulary get the fixed rule's tool, after the network's steps; a task
with a user ``strength`` gets the fixed rule's model for that strength, ordered by the network.

With ``verify=K`` (``-P verify=3``; off by default, so a decision stays a few milliseconds) the
planner runs its K best completions on the centre crop of the image (at most 256 px a side,
shared prefixes once) and the plan critic (:mod:`restoregraph.planners.critic`, trained on the
final images of the search data) picks among them, its score plus ``prior`` (default 1) times
the planner's own value, both standardised over the K (K = 3, prior 1 were chosen on the
critic data's held-out split: docs/embedded_planner.md): test-time evidence for mixtures whose best
order the input image does not reveal. The note counts the tool calls (``verify: N trials``).

When the weights are missing or fail to load, the planner plans with the fixed expert rules and
says so in the plan's note.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import PlanError, RestoreGraphError
from restoregraph.core.state import PlanStep
from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE
from restoregraph.planners._common import allowed_tools, needed_tasks, skipped_note
from restoregraph.planners.base import Plan, PlanRequest
from restoregraph.planners.fixed import FixedPlanner, choose_tool, task_order

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "embedded_planner.pt"
ARCH = "embedded-pairwise-v2"
MAX_CANDIDATES = 20_000  # completions scored per decision (4 tasks x 3 models each: 1,944)


def build_net(
    n_feats: int, n_tools: int, hidden: int = 8, tool_tasks: Sequence[int] | None = None
) -> Any:
    """The scorer: image features -> (unary (V,), pairwise (V*V,)) tool values.

    ``tool_tasks`` (the task index of each vocabulary tool) adds task-level order values
    shared by every tool of a task ("dejpeg before denoise" whichever denoiser), so what is
    learnt about an order carries over between the models of a task."""
    import torch
    from torch import nn

    tasks = list(tool_tasks) if tool_tasks is not None else list(range(n_tools))
    n_tasks = max(tasks) + 1 if tasks else 0

    class PairwiseScorer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n_tools = n_tools
            self.proj = nn.Linear(n_feats, hidden)
            self.unary = nn.Linear(hidden, n_tools)
            self.pair = nn.Linear(hidden, n_tools * n_tools)
            self.task_pair = nn.Linear(hidden, n_tasks * n_tasks)
            t = torch.tensor(tasks, dtype=torch.long)
            self.register_buffer("pair_task", (t[:, None] * n_tasks + t[None, :]).reshape(-1))

        def tables(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = torch.tanh(self.proj(x))
            pair = self.pair(h) + self.task_pair(h)[:, self.pair_task]
            return self.unary(h), pair

        def forward(
            self, x: torch.Tensor, unary: torch.Tensor, pairs: torch.Tensor
        ) -> torch.Tensor:
            """x (B, D); unary (B, C, V) tool counts; pairs (B, C, V*V) before-indicators ->
            (B, C) scores of C candidate completions per state."""
            u, v = self.tables(x)
            return (unary * u[:, None, :]).sum(-1) + (pairs * v[:, None, :]).sum(-1)

    return PairwiseScorer()


def task_names(vocab: Sequence[str]) -> list[str]:
    """The vocabulary's tasks in first-appearance order (the task-pair table's order)."""
    return list(dict.fromkeys(t.split(".", 1)[0] for t in vocab))


def vocab_tasks(vocab: Sequence[str]) -> list[int]:
    """Task index (in :func:`task_names` order) of each vocabulary tool."""
    order = task_names(vocab)
    return [order.index(t.split(".", 1)[0]) for t in vocab]


def encode_completion(
    vocab_index: Mapping[str, int], applied: Sequence[str], completion: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(unary (V,), pairs (V*V,)) of a completion: which tools it runs, and which tool runs
    before which (applied tools count as before every step of the completion)."""
    n = len(vocab_index)
    unary = np.zeros(n, np.float32)
    pairs = np.zeros(n * n, np.float32)
    comp = [vocab_index[t] for t in completion if t in vocab_index]
    before = [vocab_index[t] for t in applied if t in vocab_index]
    for j in comp:
        unary[j] += 1.0
        for i in before:
            pairs[i * n + j] = 1.0
        before.append(j)
    return unary, pairs


class Scorer:
    """The trained scorer with its vocabulary and feature normalisation (CPU, eval mode): the
    PyTorch modules of a weights blob, or (:meth:`from_arrays`) their parameters as numpy
    arrays (:mod:`restoregraph.planners.scorer_arrays`), which score without torch."""

    def __init__(self, blob: Mapping[str, Any]) -> None:
        import torch

        self._setup(
            blob["meta"],
            blob["feat_mean"].numpy().astype(np.float32),
            blob["feat_std"].numpy().astype(np.float32),
        )
        by_objective = dict(blob.get("objectives") or {})
        by_objective.setdefault(self.objective, blob.get("members") or [blob["state"]])
        self.nets_by_objective: dict[str, list[Any]] = {}
        for name, states in by_objective.items():
            nets = []
            for state in states:
                net = build_net(
                    len(self.feat_mean),
                    len(self.vocab),
                    int(self.meta["hidden"]),
                    vocab_tasks(self.vocab),
                )
                net.load_state_dict(state)
                net.eval()
                nets.append(net)
            self.nets_by_objective[str(name)] = nets
        self.nets = self.nets_by_objective[self.objective]
        self._torch = torch
        self._arrays: dict[str, list[dict[str, np.ndarray]]] | None = None

    @classmethod
    def from_arrays(
        cls,
        meta: Mapping[str, Any],
        feat_mean: np.ndarray,
        feat_std: np.ndarray,
        members: Mapping[str, list[dict[str, np.ndarray]]],
    ) -> Scorer:
        """A scorer from numpy parameters: ``members[objective]`` = each ensemble member's
        state dict as arrays (the module's own names: ``proj.weight`` ...). No torch."""
        self = cls.__new__(cls)
        self._setup(meta, np.asarray(feat_mean, np.float32), np.asarray(feat_std, np.float32))
        self._arrays = {str(k): list(v) for k, v in members.items()}
        if self.objective not in self._arrays:
            raise PlanError(f"embedded planner arrays: no members for {self.objective!r}")
        self.nets_by_objective = dict(self._arrays)
        self.nets = self.nets_by_objective[self.objective]
        return self

    def _setup(self, meta: Mapping[str, Any], feat_mean: np.ndarray, feat_std: np.ndarray) -> None:
        if meta.get("arch") != ARCH:
            raise PlanError(f"embedded planner weights: unknown architecture {meta.get('arch')!r}")
        self.meta = dict(meta)
        self.vocab: list[str] = list(meta["vocab"])
        self.vocab_index = {t: i for i, t in enumerate(self.vocab)}
        self.feat_mean = feat_mean
        self.feat_std = feat_std
        index = meta.get("feat_index")  # which entries of the feature vector the net reads
        self.feat_index = None if index is None else np.asarray(index, dtype=np.int64)
        # the perception result (type -> level of what is still to undo) is part of the input
        self.perception_input = bool(meta.get("perception_input", False))
        # and the whole image's size (search.features.size_features), last
        self.size_input = bool(meta.get("size_input", False))
        # an ensemble stores every member's state under "members" ("state" is the first); a
        # planner trained for several objectives keeps each one's members under "objectives"
        self.objective = str(meta.get("objective", "balanced"))

    @property
    def objectives(self) -> list[str]:
        """The objectives this scorer has values for (the first is its default)."""
        return [self.objective, *(o for o in self.nets_by_objective if o != self.objective)]

    def inputs(
        self,
        image_feats: np.ndarray,
        perception: Mapping[str, int],
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """The raw input vector: image features, then (when the scorer reads them) the encoded
        perception of the degradations still to undo and the image's (height, width)."""
        from restoregraph.planners.features import perception_features, size_features

        parts = [np.asarray(image_feats, np.float32)]
        if self.perception_input:
            parts.append(perception_features(perception))
        if self.size_input:
            if size is None:
                raise PlanError("the embedded planner's weights read the image size; none given")
            parts.append(size_features(*size))
        return np.concatenate(parts)

    def normalise(self, feats: np.ndarray) -> np.ndarray:
        f = np.asarray(feats, np.float32)
        if self.feat_index is not None:
            f = f[self.feat_index]
        return (f - self.feat_mean) / self.feat_std

    def tables(
        self, feats: np.ndarray, objective: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Unary (V,) and pairwise (V, V) values for raw input ``feats`` (:meth:`inputs`) under
        ``objective`` (None or one it was not trained for: its default objective)."""
        nets = self.nets_by_objective.get(objective or self.objective, self.nets)
        if self._arrays is not None:
            from restoregraph.planners.scorer_arrays import member_tables

            return member_tables(nets, self.normalise(feats), len(self.vocab))
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(self.normalise(feats)[None])
            tables = [net.tables(x) for net in nets]
            u = torch.stack([t[0][0] for t in tables]).mean(0)
            v = torch.stack([t[1][0] for t in tables]).mean(0)
        n = len(self.vocab)
        return u.numpy(), v.numpy().reshape(n, n)

    def knows(self, tool_id: str) -> bool:
        """Whether the scorer can value ``tool_id``: a vocabulary tool, or a tool of a task it
        has tools for (valued as the mean of that task's tools, a hair below them)."""
        return tool_id in self.vocab_index or tool_id.split(".", 1)[0] in self._task_tools

    @functools.cached_property
    def _task_tools(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, t in enumerate(self.vocab):
            out.setdefault(t.split(".", 1)[0], []).append(i)
        return out

    def score(
        self,
        feats: np.ndarray,
        applied: Sequence[str],
        completions: Sequence[Sequence[str]],
        objective: str | None = None,
    ) -> np.ndarray:
        """Scores of ``completions`` (tool-id sequences of tools the scorer :meth:`knows`)."""
        u, v = self.tables(feats, objective)
        index = dict(self.vocab_index)
        proxies = [
            t
            for t in dict.fromkeys([*applied, *(t for c in completions for t in c)])
            if t not in index and t.split(".", 1)[0] in self._task_tools
        ]
        if proxies:  # tools unknown to the network: the mean of their task's tools
            rows = [self._task_tools[t.split(".", 1)[0]] for t in proxies]
            u = np.concatenate([u, [u[r].mean() - 1e-6 for r in rows]])
            n = len(u)
            ext = np.zeros((n, n), np.float32)
            k = len(self.vocab)
            ext[:k, :k] = v
            for a, ra in enumerate(rows):
                ext[k + a, :k] = v[ra].mean(0)
                ext[:k, k + a] = v[:, ra].mean(1)
                for b, rb in enumerate(rows):
                    ext[k + a, k + b] = v[np.ix_(ra, rb)].mean()
            v = ext
            index.update({t: k + a for a, t in enumerate(proxies)})
        before = [index[t] for t in applied if t in index]
        base = v[before].sum(0) if before else np.zeros(len(u), np.float32)
        out = np.zeros(len(completions), np.float64)
        by_len: dict[int, list[int]] = {}
        for j, comp in enumerate(completions):
            by_len.setdefault(len(comp), []).append(j)
        for n_steps, rows_of in by_len.items():
            if n_steps == 0:
                continue
            idx = np.array([[index[t] for t in completions[j]] for j in rows_of], np.int64)
            total = (u[idx] + base[idx]).sum(1).astype(np.float64)
            for a in range(n_steps):
                for b in range(a + 1, n_steps):
                    total += v[idx[:, a], idx[:, b]]
            out[rows_of] = total
        return out


def load_model(path: str | Path | None = None) -> Scorer:
    """Load planner weights (a plain ``torch.save`` dict, read with ``weights_only=True``); on
    an ONNX backend (``$RESTOREGRAPH_BACKEND``), their numpy arrays from the export cache
    (:mod:`restoregraph.planners.scorer_arrays`; made once, torch only then), so planning needs
    no torch."""
    from restoregraph.tools.backends import onnx_backend

    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not p.is_file():
        raise PlanError(
            f"embedded planner weights not found: {p} (train them with "
            "`python -m restoregraph.lab.training.embedded_train`)"
        )
    backend = onnx_backend()
    if backend is not None:
        model = _cached_arrays(str(p.resolve()), p.stat().st_mtime_ns, backend)
        if model is not None:
            return model
    return _cached_model(str(p.resolve()), p.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _cached_arrays(path: str, mtime_ns: int, backend: str) -> Scorer | None:
    from restoregraph.tools.backends import onnx_or_none

    return onnx_or_none(Path(path).name, backend, lambda: _arrays_scorer(Path(path), mtime_ns))


def _arrays_scorer(path: Path, mtime_ns: int, folder: Path | None = None) -> Scorer:
    from restoregraph.planners.scorer_arrays import ensure_scorer_arrays, read_scorer_arrays

    npz, _ = ensure_scorer_arrays(path, lambda: _cached_model(str(path), mtime_ns), folder)
    return Scorer.from_arrays(*read_scorer_arrays(npz))


def export_arrays(
    path: str | Path | None = None, folder: Path | None = None, force: bool = False
) -> tuple[Path, dict[str, Any]]:
    """The verified numpy arrays of planner weights ``path`` (default: the shipped ones) in the
    export cache (``restoregraph tools export``); ``force``: made again."""
    from restoregraph.planners.scorer_arrays import ensure_scorer_arrays, export_scorer_arrays
    from restoregraph.weightfiles import sha256_of

    p = (Path(path) if path is not None else DEFAULT_WEIGHTS).resolve()
    scorer = functools.partial(_cached_model, str(p), p.stat().st_mtime_ns)
    if force:
        return export_scorer_arrays(scorer(), p, sha256_of(p), folder)
    return ensure_scorer_arrays(p, scorer, folder)


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, mtime_ns: int) -> Scorer:
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return Scorer(blob)
    except PlanError:
        raise
    except Exception as exc:  # corrupt file, wrong shapes
        raise PlanError(f"embedded planner weights unreadable: {path} ({exc})") from None


# (task, position) -> tool ids allowed there (the caller applies every constraint)
AllowedFn = Callable[[str, int], list[str]]


def completions(
    todo: Sequence[str],
    allowed: AllowedFn,
    position: int = 0,
    known: Callable[[str], bool] | None = None,
) -> list[tuple[str, ...]]:
    """Every order of ``todo`` x every allowed tool per task at each position (only the tools
    ``known`` accepts, when given)."""
    tasks = list(dict.fromkeys(todo))
    out: list[tuple[str, ...]] = []
    for order in itertools.permutations(tasks):
        per_step = [
            [t for t in allowed(task, position + i) if known is None or known(t)]
            for i, task in enumerate(order)
        ]
        if any(not ids for ids in per_step):
            continue
        out.extend(itertools.product(*per_step))
        if len(out) > MAX_CANDIDATES:
            raise PlanError(f"embedded planner: more than {MAX_CANDIDATES} candidate plans")
    return out


def ranked_completions(
    model: Scorer,
    feats: np.ndarray,
    todo: Sequence[str],
    allowed: AllowedFn,
    applied: Sequence[str] = (),
    position: int = 0,
    objective: str | None = None,
) -> list[tuple[tuple[str, ...], float]]:
    """Every completion of ``todo`` with its score, best first (ties: enumeration order). When
    no order of all of ``todo`` has an allowed known tool at every step, the last task is left
    out (the caller plans it) and the rest is scored."""
    tasks = list(dict.fromkeys(todo))
    while tasks:
        cands = completions(tasks, allowed, position, model.knows)
        if cands:
            scores = model.score(feats, applied, cands, objective)
            order = np.argsort(-scores, kind="stable")
            return [(cands[int(i)], float(scores[int(i)])) for i in order]
        tasks = tasks[:-1]
    return []


def best_completion(
    model: Scorer,
    feats: np.ndarray,
    todo: Sequence[str],
    allowed: AllowedFn,
    applied: Sequence[str] = (),
    position: int = 0,
    objective: str | None = None,
) -> list[str]:
    """The best-scored completion of ``todo`` (see :func:`ranked_completions`)."""
    ranked = ranked_completions(model, feats, todo, allowed, applied, position, objective)
    return list(ranked[0][0]) if ranked else []


VERIFY_CROP = 256  # plans are verified on the centre crop of at most this many px a side


def verify_plans(
    critic: Any,
    image: np.ndarray,
    image_feats: np.ndarray,
    ranked: Sequence[tuple[tuple[str, ...], float]],
    request: PlanRequest,
    prior: float = 0.0,
) -> tuple[tuple[str, ...], str]:
    """Run the ``ranked`` plans (the planner's best first, with its values) on the centre crop
    of ``image`` (at most :data:`VERIFY_CROP` px a side; common prefixes once) and return the
    one the plan critic scores best (plus ``prior`` x the planner's value; both standardised:
    :func:`restoregraph.planners.critic.combine_pick`), with a note that counts the tool calls
    (``verify: N trials``). A plan whose tool fails is out; when all fail, the planner's first
    choice stands."""
    from restoregraph.planners.critic import combine_pick
    from restoregraph.planners.features import image_features
    from restoregraph.planners.tree import walk_tree

    h, w = image.shape[:2]
    ch, cw = min(h, VERIFY_CROP), min(w, VERIFY_CROP)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = np.ascontiguousarray(image[top : top + ch, left : left + cw])
    source = image_feats if (ch, cw) == (h, w) else image_features(crop)
    finals: dict[tuple[str, ...], np.ndarray] = {}

    def on_final(p: tuple[str, ...], out: np.ndarray | None, error: str) -> None:
        if out is not None:
            finals[p] = out

    pipelines = [tuple(p) for p, _ in ranked]
    values = {tuple(p): v for p, v in ranked}
    stats = walk_tree(crop, pipelines, request.toolbox, on_final=on_final)
    ok = [p for p in pipelines if p in finals]
    if not ok:
        return pipelines[0], f"verify: {stats.tool_calls} trials; every plan failed on the crop"
    scores = critic.score(np.stack([image_features(finals[p]) for p in ok]), source)
    best = ok[combine_pick(list(scores), [values[p] for p in ok], prior)]
    rank = pipelines.index(best) + 1
    note = (
        f"verify: {stats.tool_calls} trials ({len(ok)} of the planner's best plans run on a "
        f"{ch}x{cw} crop; the critic chose its #{rank})"
    )
    return best, note


def _allowed_fn(
    request: PlanRequest, needed: Mapping[str, int], allowed_now: Mapping[str, list[str]]
) -> AllowedFn:
    """Which tools may serve ``task`` at plan position ``pos``: ``allowed_now`` at the current
    position; later, every tool of a task not forbidden less the failures recorded there. The
    user's strength for a task picks its model."""
    position = request.position
    failed_by_pos: dict[int, set[str]] = {}
    for f in request.failed:
        failed_by_pos.setdefault(int(f["position"]), set()).add(f["tool"])

    def allowed(task: str, pos: int) -> list[str]:
        if pos == position:
            ids = allowed_now[task]
        elif task in request.forbidden_tasks:
            ids = []
        else:  # a later position: only the failures recorded there rule a tool out
            failed = failed_by_pos.get(pos, set())
            ids = [s.id for s in request.toolbox.for_task(task) if s.id not in failed]
        if task in request.strength and ids:  # the user's strength picks the model
            spec = choose_tool(request, task, needed[task])
            ids = [spec.id] if spec is not None and spec.id in ids else []
        return ids

    return allowed


def _fixed_rest(
    request: PlanRequest, needed: Mapping[str, int], planned: set[str]
) -> tuple[list[PlanStep], list[str]]:
    """The fixed rule's steps for the needed tasks not ``planned``, and the tasks it skipped
    (every tool rolled back)."""
    extra: list[PlanStep] = []
    skipped: list[str] = []
    for task in task_order([t for t in needed if t not in planned]):
        spec = choose_tool(request, task, needed[task])
        if spec is None:
            skipped.append(task)
        else:
            extra.append(PlanStep(task=task, tool=spec.id))
    return extra, skipped


class EmbeddedPlanner:
    """Pairwise plan scorer trained on the search data (see the module docstring); with
    ``verify=K`` (K > 1) it runs its K best plans on the image and lets the plan critic
    (:mod:`restoregraph.planners.critic`) choose among them."""

    name = "embedded"

    def __init__(
        self,
        weights: str | None = None,
        verify: int | str = 0,
        critic: str | None = None,
        prior: float | str = 1.0,
    ) -> None:
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        self._model: Scorer | None = None
        self._error = ""
        try:
            self._model = load_model(self.weights)
        except RestoreGraphError as exc:
            self._error = str(exc)
        try:
            self.verify = int(verify)
        except (TypeError, ValueError):
            raise PlanError(
                f"embedded planner: verify must be a whole number, got {verify!r}"
            ) from None
        if self.verify < 0:
            raise PlanError(f"embedded planner: verify must be >= 0, got {self.verify}")
        try:
            self.prior = float(prior)
        except (TypeError, ValueError):
            raise PlanError(f"embedded planner: prior must be a number, got {prior!r}") from None
        self.critic_path = critic
        self._critic: Any = None
        if self.verify > 1:  # fail now, with the path, rather than at the first plan
            from restoregraph.planners.critic import load_critic

            self._critic = load_critic(critic)

    @property
    def model(self) -> Scorer | None:
        return self._model

    def _verify(
        self,
        request: PlanRequest,
        image: np.ndarray,
        image_feats: np.ndarray,
        ranked: list[tuple[tuple[str, ...], float]],
    ) -> tuple[list[str], str]:
        """The tools to plan (the best-scored completion, or what the critic chose among the
        ``verify`` best) and the verification note ("" when not verified)."""
        tools = list(ranked[0][0]) if ranked else []
        verified = ""
        if self.verify > 1 and len(ranked) > 1:
            if request.objective == self._critic.objective:
                pick, verified = verify_plans(
                    self._critic, image, image_feats, ranked[: self.verify], request, self.prior
                )
                tools = list(pick)
            else:
                verified = (
                    f"not verified: the critic judges {self._critic.objective!r}, "
                    f"not {request.objective!r}"
                )
        return tools, verified

    def plan(self, request: PlanRequest) -> Plan:
        if self._model is None:
            plan = FixedPlanner().plan(request)
            note = f"embedded planner unavailable ({self._error}); fixed rules planned"
            return Plan(steps=plan.steps, note="; ".join(x for x in (note, plan.note) if x))
        model = self._model
        needed = needed_tasks(request)
        if not needed:
            return Plan(steps=[], note="embedded: nothing left to restore")
        if request.load_image is None:
            raise PlanError("the embedded planner needs the current image (request.load_image)")
        from restoregraph.planners.features import image_features

        remaining = {
            ptype: int(needed[task]) if task in request.strength else level
            for ptype, level in request.perception.items()
            if (task := TASK_FOR_PERCEPTION_TYPE.get(ptype)) in needed
        }
        image = request.load_image()
        image_feats = image_features(image)
        feats = model.inputs(image_feats, remaining, image.shape[:2])
        allowed_now = {t: [s.id for s in allowed_tools(request, t)] for t in needed}
        allowed = _allowed_fn(request, needed, allowed_now)
        applied = [h["tool"] for h in request.history if h["status"] == "accepted"]
        # tasks no vocabulary tool can serve go to the fixed rule; the rest are scored
        scorable = [t for t in task_order(needed) if any(model.knows(i) for i in allowed_now[t])]
        objective = request.objective if request.objective in model.objectives else None
        ranked = ranked_completions(
            model, feats, scorable, allowed, applied, request.position, objective
        )
        tools, verified = self._verify(request, image, image_feats, ranked)
        steps = [PlanStep(task=request.toolbox.get(t).task, tool=t) for t in tools]
        extra, skipped = _fixed_rest(request, needed, {s["task"] for s in steps})
        notes = [verified] if verified else []
        if objective is None and request.objective != model.objective:
            notes.append(
                f"no values for objective {request.objective!r}; planned for {model.objective!r}"
            )
        if extra:
            notes.append(
                "fixed rule for tasks outside the network's vocabulary: "
                + ", ".join(s["tool"] for s in extra)
            )
        if skipped:
            notes.append(skipped_note(request, skipped))
        return Plan(steps=steps + extra, note="; ".join(notes))


__all__ = [
    "ARCH",
    "DEFAULT_WEIGHTS",
    "EmbeddedPlanner",
    "Scorer",
    "best_completion",
    "ranked_completions",
    "build_net",
    "completions",
    "task_names",
    "vocab_tasks",
    "encode_completion",
    "export_arrays",
    "load_model",
]

"""Weights & Biases logging that can never stop a training run.

Training must not hang or die because W&B is unreachable, unconfigured or broken, so every wandb call here
is bounded (timeouts) and guarded: on the first failure we print one warning and carry on without logging.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import wandb

MODES = ("auto", "online", "offline", "disabled")

# Without network wandb.init retries until init_timeout (default 90 s); 30 s still covers a slow login.
INIT_TIMEOUT_S = 30.0
# Bound the final upload of an online run; whatever is left stays on disk for `wandb sync`.
FINISH_TIMEOUT_S = 120.0


# W&B refuses a run whose tags are longer than this (wandb.init raises a ValidationError), so a long tag would switch
# logging off for the whole run: an ablation label such as
# patchify+gelu+fewer_activations+fewer_norms+layer_norm+separate_downsampling has 76 characters.
MAX_TAG_LENGTH = 64


def wandb_tag(tag: str) -> str:
    """A tag W&B accepts: as it is up to MAX_TAG_LENGTH characters, else its start and a hash of the whole (so two
    long labels never share a tag). The full text stays where it is also given, e.g. the run's config `label`."""
    if len(tag) <= MAX_TAG_LENGTH:
        return tag
    digest = hashlib.sha1(tag.encode()).hexdigest()[:8]
    return f"{tag[:MAX_TAG_LENGTH - len(digest) - 1]}~{digest}"


def _warn(message: str) -> None:
    print(f"[tracking] WARNING: {message}", file=sys.stderr, flush=True)


def _api_key_configured() -> bool:
    """Whether wandb finds credentials without prompting: WANDB_API_KEY, a netrc entry or a settings key."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        # The lookup wandb.init itself does (host from WANDB_BASE_URL / settings file, netrc from NETRC or
        # ~/.netrc), minus the deprecation warning that wandb.api.api_key prints in wandb 0.31.
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth

        settings = wandb_setup.singleton().settings
        return bool(wbauth.read_netrc_auth(host=settings.base_url) or settings.api_key)
    except ImportError:  # older wandb without wbauth: its public helper does the same lookup there
        return bool(wandb.api.api_key)
    except Exception:  # noqa: BLE001 -- e.g. a malformed key: online would fail anyway
        return False


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"invalid W&B mode {mode!r}; expected one of {', '.join(MODES)}")


def resolve_mode(mode: str) -> str:
    """Map a configured mode to the one wandb runs in; "auto" is online only when an API key is configured."""
    _check_mode(mode)
    if mode == "auto":
        return "online" if _api_key_configured() else "offline"
    return mode


def start_run(mode: str, run_dir: str | Path, init: dict) -> Any:
    """wandb.init of a run in `run_dir`, quiet, bounded in time, never handed an open run of this process."""
    settings = wandb.Settings(
        console="off",  # no stdout/stderr capture: the trainer's own output stays untouched
        silent=True,
        quiet=True,
        init_timeout=INIT_TIMEOUT_S,
        login_timeout=INIT_TIMEOUT_S,  # online without a key prompts on a terminal; don't wait forever
        finish_timeout=FINISH_TIMEOUT_S,
    )
    path = Path(run_dir).resolve()
    # wandb infers the git root from dir and warns if dir does not exist yet.
    path.mkdir(parents=True, exist_ok=True)
    # Global settings too: login messages ("Loaded credentials ...") ignore the per-run ones.
    wandb.setup(settings=settings)
    # wandb's default outside notebooks hands back a run still open in this process (one a failed multirun job never
    # finished), so this run's metrics would land in that one: reinit="finish_previous".
    return wandb.init(mode=mode, dir=str(path), reinit="finish_previous", settings=settings, **init)


class Tracker:
    """Weights & Biases logging for one run (rank 0 only; other ranks get a no-op).

    Used as a context manager it always finishes its run, as failed (exit code 1) when an exception escapes:
    an unfinished run would stay open in this process until the next one starts.
    """

    def __init__(self, *, mode: str, project: str, entity: str | None, group: str, name: str,
                 tags: list[str], config: dict, run_dir: str | Path, run_id: str | None = None,
                 enabled: bool = True, job_type: str | None = None,
                 summary_names: Mapping[str, str] | None = None) -> None:
        """job_type: W&B's run type ("train", "table"), what workspaces filter on. summary_names: the W&B name of
        a summary key where it differs from the key given to `summary` (e.g. one a history key would shadow)."""
        _check_mode(mode)  # also where logging is off, so a typo fails on every rank
        self._run: Any = None
        self._summary_names = dict(summary_names or {})
        self._at_finish: list[Callable[[], None]] = []
        self._mode = resolve_mode(mode) if enabled else "disabled"
        if self._mode == "disabled":
            return  # never touch wandb: no service process, no files

        init = {"project": project, "entity": entity, "group": group, "name": name,
                "tags": [wandb_tag(tag) for tag in tags],
                "job_type": job_type, "config": config, "id": run_id, "resume": "allow" if run_id else None}

        def start(mode: str) -> Any:
            return start_run(mode, run_dir, init)

        try:
            try:
                self._run = start(self._mode)
            except Exception as e:
                if self._mode != "online":
                    raise
                _warn(f"online wandb.init failed ({type(e).__name__}: {_first_line(e)}); logging offline instead")
                self._teardown()
                self._mode = "offline"
                self._run = start("offline")
        except Exception as e:  # noqa: BLE001 -- bad key, unwritable dir...: train on without W&B
            _warn(f"wandb.init failed ({type(e).__name__}: {_first_line(e)}); W&B logging disabled for this run")
            self._disable()
            return
        # The login prompt can still change the mode: a timeout gives a no-op run, "don't visualize" offline.
        if self._run.disabled:
            _warn("wandb.init returned a disabled run (login timed out?); W&B logging disabled for this run")
            self._disable()
        elif self._run.offline:
            self._mode = "offline"

    @property
    def run_id(self) -> str | None:
        return self._run.id if self._run is not None else None

    @property
    def mode(self) -> str:
        """The mode actually in use: "online", "offline" or "disabled" (also after a failed init)."""
        return self._mode

    def log(self, metrics: dict, step: int) -> None:
        """Log one epoch's metrics at `step` (must not decrease: wandb drops older steps)."""
        self._guard("log", lambda run: run.log(dict(metrics), step=step))

    def summary(self, metrics: dict) -> None:
        """Set summary values, each under its name in summary_names (its own key where it has none)."""
        named = {self._summary_names.get(k, k): v for k, v in metrics.items()}
        self._guard("summary", lambda run: run.summary.update(named))

    def define_step_metric(self, step_metric: str, keys: Iterable[str]) -> None:
        """Plot `keys` (names or globs such as "val/*") against `step_metric` by default, not W&B's own step."""
        def define(run: Any) -> None:
            run.define_metric(step_metric)
            for key in keys:
                run.define_metric(key, step_metric=step_metric)
        self._guard("define_metric", define)

    def image(self, key: str, path: str | Path) -> None:
        """Log an image file; without a step it joins the latest logged step's history row."""
        self._guard("image", lambda run: run.log({key: wandb.Image(str(path))}))

    def artifact(self, name: str, artifact_type: str, paths: Iterable[str | Path],
                 metadata: dict | None = None) -> None:
        """Log files as a new version of artifact `name` (of W&B type `artifact_type`); files that do not exist are
        left out."""
        def log(run: Any) -> None:
            artifact = wandb.Artifact(name, type=artifact_type, metadata=metadata)
            for path in paths:
                if Path(path).is_file():
                    artifact.add_file(str(path), name=Path(path).name)
            run.log_artifact(artifact)
        self._guard("artifact", log)

    def at_finish(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the run finishes successfully, before W&B closes it (e.g. to log an artifact)."""
        if self._run is not None:
            self._at_finish.append(callback)

    def mark_preempting(self) -> None:
        """Tell W&B the run was stopped to be resumed (a signal), not crashed."""
        self._guard("mark_preempting", lambda run: run.mark_preempting())

    def table(self, key: str, columns: list[str], rows: list[list]) -> None:
        """Log a table; without a step it joins the latest logged step's history row."""
        self._guard("table", lambda run: run.log({key: wandb.Table(columns=list(columns), data=rows)}))

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        # Does nothing after an explicit finish(); never swallows the exception (returns None).
        self.finish(exit_code=0 if exc_type is None else 1)

    def finish(self, exit_code: int = 0) -> None:
        """End the run; a nonzero exit_code marks it failed in W&B. Later calls do nothing."""
        if self._run is None:
            return
        callbacks, self._at_finish = self._at_finish, []
        for callback in callbacks if exit_code == 0 else []:
            try:
                callback()
            except Exception as e:  # noqa: BLE001 -- an extra (e.g. an artifact) must not cost the run its end
                _warn(f"at-finish callback failed ({type(e).__name__}: {_first_line(e)})")
        if self._run is None:  # a wandb call inside a callback failed and tore the run down
            return
        offline_dir = Path(self._run.dir).parent if self._mode == "offline" else None
        self._guard("finish", lambda run: run.finish(exit_code=exit_code))
        if self._run is not None:  # _guard already tore down on failure
            self._run = None
            self._teardown()
        if offline_dir is not None:  # silent=True hides wandb's own hint
            print(f"[tracking] W&B offline run saved; upload it with: wandb sync {offline_dir}",
                  file=sys.stderr, flush=True)

    def _guard(self, what: str, call: Callable[[Any], Any]) -> None:
        """Run call(run); on failure warn once and stop logging, since a logger must not end training."""
        if self._run is None:
            return
        try:
            call(self._run)
        except Exception as e:  # noqa: BLE001 -- whatever broke inside wandb, training goes on
            _warn(f"wandb {what} failed ({type(e).__name__}: {e}); W&B logging disabled from here on")
            self._disable()

    def _disable(self) -> None:
        self._run, self._mode = None, "disabled"
        self._teardown()

    @staticmethod
    def _teardown() -> None:
        # Stops the wandb-core service process now rather than at interpreter exit (the atexit hook is
        # unreliable under multiprocessing); the next Tracker starts a fresh one.
        try:
            wandb.teardown()
        except Exception as e:  # noqa: BLE001 -- best effort; the atexit hook tries again
            _warn(f"wandb.teardown failed ({type(e).__name__}: {e})")

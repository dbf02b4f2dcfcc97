"""The idempotent change engine: each step says what it would change, then changes only that.

Why plan-then-apply: ``--dry-run`` prints exactly the list a real run would carry out, and a
second run finds every step already in place and reports no changes. ``--root DIR`` applies
everything under a scratch directory (for tests and for preparing an image); commands that only
make sense on the live system (swapoff, sysctl, starting units) are skipped there and said so.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ProvisionError(RuntimeError):
    """A step cannot be carried out; the message says which and what to do."""


@dataclass
class Context:
    root: Path
    dry_run: bool
    log: Callable[[str], None] = print
    warnings: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """True when provisioning the running system itself (root is /)."""
        return self.root.resolve() == Path("/")

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.log(f"warning: {text}")

    def _ids(self, table: str, name: str) -> int | None:
        try:
            text = self.path(f"/etc/{table}").read_text()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        return None

    def uid(self, name: str) -> int | None:
        return self._ids("passwd", name)

    def gid(self, name: str) -> int | None:
        return self._ids("group", name)


class Step:
    """One thing the booth must have. ``changes`` is empty when it is already in place."""

    def changes(self, ctx: Context) -> list[str]:
        raise NotImplementedError

    def apply(self, ctx: Context) -> None:
        raise NotImplementedError


def _owner_text(owner: str, group: str) -> str:
    return f"{owner}:{group}"


def _ownership_changes(ctx: Context, path: Path, mode: int, owner: str,
                       group: str) -> list[str]:
    st = path.stat()
    out = []
    if st.st_mode & 0o7777 != mode:
        out.append(f"chmod {mode:04o} {path} (was {st.st_mode & 0o7777:04o})")
    uid, gid = ctx.uid(owner), ctx.gid(group)
    if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
        out.append(f"chown {_owner_text(owner, group)} {path}")
    return out


def _set_ownership(ctx: Context, path: Path, mode: int, owner: str, group: str) -> None:
    uid, gid = ctx.uid(owner), ctx.gid(group)
    if uid is None or gid is None:
        raise ProvisionError(f"user {owner} or group {group} does not exist in {ctx.root}/etc")
    if os.geteuid() == 0:
        os.chown(path, uid, gid, follow_symlinks=False)
    elif (uid, gid) != (os.getuid(), os.getgid()):
        ctx.warn(f"not root: {path} keeps its owner (should be {owner}:{group})")
    os.chmod(path, mode)


@dataclass
class Directory(Step):
    path: str
    mode: int
    owner: str = "root"
    group: str = "root"

    def changes(self, ctx: Context) -> list[str]:
        target = ctx.path(self.path)
        if not target.is_dir():
            return [f"create directory {self.path} ({self.mode:04o} "
                    f"{_owner_text(self.owner, self.group)})"]
        return _ownership_changes(ctx, target, self.mode, self.owner, self.group)

    def apply(self, ctx: Context) -> None:
        target = ctx.path(self.path)
        target.mkdir(parents=True, exist_ok=True)
        _set_ownership(ctx, target, self.mode, self.owner, self.group)


@dataclass
class File(Step):
    """A file with exactly this content, mode and owner (written atomically)."""

    path: str
    content: bytes | Callable[[bytes | None], bytes]
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    secret: bool = False  # never print the content (keys, passwords)
    _desired: bytes | None = None

    def desired(self, ctx: Context) -> bytes:
        if self._desired is None:
            current = self._current(ctx)
            self._desired = self.content(current) if callable(self.content) else self.content
        return self._desired

    def _current(self, ctx: Context) -> bytes | None:
        try:
            return ctx.path(self.path).read_bytes()
        except FileNotFoundError:
            return None

    def changes(self, ctx: Context) -> list[str]:
        current = self._current(ctx)
        what = f"({self.mode:04o} {_owner_text(self.owner, self.group)})"
        if current is None:
            return [f"create {self.path} {what}"]
        out = []
        if current != self.desired(ctx):
            out.append(f"rewrite {self.path} {what}")
        return out + _ownership_changes(ctx, ctx.path(self.path), self.mode, self.owner,
                                        self.group)

    def apply(self, ctx: Context) -> None:
        target = ctx.path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.desired(ctx)
        if self._current(ctx) != data:
            tmp = target.with_name(f".{target.name}.provision")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            _set_ownership(ctx, tmp, self.mode, self.owner, self.group)
            os.replace(tmp, target)
        else:
            _set_ownership(ctx, target, self.mode, self.owner, self.group)


@dataclass
class SystemUser(Step):
    """A system user with its own group, no home, no shell, in the groups that exist."""

    name: str
    groups: Sequence[str] = ()

    def _groups(self, ctx: Context) -> list[str]:
        return [g for g in self.groups if ctx.gid(g) is not None]

    def _missing_groups(self, ctx: Context) -> list[str]:
        try:
            text = ctx.path("/etc/group").read_text()
        except FileNotFoundError:
            return []
        members = {f[0]: f[3].split(",") for f in (ln.split(":") for ln in text.splitlines())
                   if len(f) >= 4}
        return [g for g in self._groups(ctx) if self.name not in members.get(g, [])]

    def changes(self, ctx: Context) -> list[str]:
        if ctx.uid(self.name) is None:
            groups = self._groups(ctx)
            return [f"create system user {self.name}"
                    + (f" (groups {', '.join(groups)})" if groups else "")]
        missing = self._missing_groups(ctx)
        return [f"add {self.name} to group {g}" for g in missing]

    def apply(self, ctx: Context) -> None:
        prefix = [] if ctx.live else ["--prefix", str(ctx.root)]
        if ctx.uid(self.name) is None:
            groups = self._groups(ctx)
            run(["useradd", *prefix, "--system", "--user-group", "--home-dir", "/nonexistent",
                 "--no-create-home", "--shell", "/usr/sbin/nologin",
                 *(["--groups", ",".join(groups)] if groups else []), self.name])
        else:
            for group in self._missing_groups(ctx):
                run(["usermod", *prefix, "--append", "--groups", group, self.name])


@dataclass
class EnableUnits(Step):
    """``systemctl --root`` enable: works on a scratch root without a running systemd."""

    units: Sequence[str]

    def _state(self, ctx: Context, unit: str) -> str:
        proc = subprocess.run(["systemctl", f"--root={ctx.root}", "is-enabled", unit],
                              capture_output=True, text=True, check=False)
        return proc.stdout.strip() or proc.stderr.strip()

    def changes(self, ctx: Context) -> list[str]:
        return [f"enable {u}" for u in self.units if self._state(ctx, u) != "enabled"]

    def apply(self, ctx: Context) -> None:
        todo = [u for u in self.units if self._state(ctx, u) != "enabled"]
        if todo:
            run(["systemctl", f"--root={ctx.root}", "--quiet", "enable", *todo])


def run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure is a ProvisionError that shows its output."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                          **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise ProvisionError(f"{' '.join(argv)} failed ({proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()}")
    return proc


@dataclass
class Outcome:
    changes: list[str]
    skipped: list[str]
    warnings: list[str]


def carry_out(steps: Sequence[Step], ctx: Context) -> list[str]:
    """Plan and (unless dry-run) apply each step in order; returns every change made/planned."""
    done: list[str] = []
    for step in steps:
        planned = step.changes(ctx)
        for line in planned:
            ctx.log(("would " if ctx.dry_run else "") + line)
        done += planned
        if planned and not ctx.dry_run:
            step.apply(ctx)
    return done

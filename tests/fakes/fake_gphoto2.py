"""A STAND-IN for the ``gphoto2`` Python binding (no DSLR on a test machine).

It mimics the few calls the gphoto2 source makes (Camera.init/get_config/set_config/
capture_preview/capture/file_get/file_delete/exit, widgets with choices, GPhoto2Error) and
records what a real camera would have done: where a still was stored (RAM or card), whether it
was deleted. ``unplug()`` makes every further call fail like a camera pulled off USB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GP_CAPTURE_IMAGE = 0
GP_FILE_TYPE_NORMAL = 1
GP_ERROR_IO = -7
GP_ERROR_MODEL_NOT_FOUND = -105


class GPhoto2Error(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"[{code}] stand-in gphoto2 error")
        self.code = code


@dataclass
class Widget:
    name: str
    value: str = ""
    choices: list[str] = field(default_factory=list)
    children: dict[str, Widget] = field(default_factory=dict)

    def get_child_by_name(self, name: str) -> Widget:
        if name not in self.children:
            raise GPhoto2Error(-2)
        return self.children[name]

    def count_choices(self) -> int:
        return len(self.choices)

    def get_choice(self, index: int) -> str:
        return self.choices[index]

    def set_value(self, value: str) -> None:
        self.value = value

    def get_value(self) -> str:
        return self.value


class CameraFile:
    def __init__(self, data: bytes) -> None:
        self._data = bytearray(data)

    def get_data_and_size(self) -> memoryview:
        return memoryview(self._data)


@dataclass
class CameraFilePath:
    folder: str
    name: str


class StandInCamera:
    """One simulated body; ``has_ram_target=False`` is a camera without the setting."""

    def __init__(self, jpeg: bytes, preview: bytes, has_ram_target: bool = True) -> None:
        self.jpeg, self.preview = jpeg, preview
        self.target = "Memory card"
        self.has_ram_target = has_ram_target
        self.card: list[str] = []
        self.ram: list[str] = []
        self.unplugged = False
        self.inits = 0

    def check(self) -> None:
        if self.unplugged:
            raise GPhoto2Error(GP_ERROR_IO)


class StandInModule:
    """Passed to the source in place of ``import gphoto2``."""

    GPhoto2Error = GPhoto2Error
    GP_CAPTURE_IMAGE = GP_CAPTURE_IMAGE
    GP_FILE_TYPE_NORMAL = GP_FILE_TYPE_NORMAL

    def __init__(self, body: StandInCamera) -> None:
        self.body = body

    def Camera(self) -> Camera:  # noqa: N802 - the binding's name
        return Camera(self.body)


class Camera:
    def __init__(self, body: StandInCamera) -> None:
        self.body = body

    def init(self) -> None:
        if self.body.unplugged:
            raise GPhoto2Error(GP_ERROR_MODEL_NOT_FOUND)
        self.body.inits += 1

    def exit(self) -> None:
        pass

    def get_summary(self) -> str:
        return "Stand-in DSLR (not a real camera)\n"

    def get_config(self) -> Widget:
        self.body.check()
        root = Widget("main")
        if self.body.has_ram_target:
            root.children["capturetarget"] = Widget(
                "capturetarget", self.body.target, ["Internal RAM", "Memory card"])
        return root

    def set_config(self, config: Widget) -> None:
        self.body.check()
        if "capturetarget" in config.children:
            self.body.target = config.children["capturetarget"].value

    def capture_preview(self) -> CameraFile:
        self.body.check()
        return CameraFile(self.body.preview)

    def capture(self, kind: int) -> CameraFilePath:
        self.body.check()
        name = f"IMG_{len(self.body.card) + len(self.body.ram):04d}.JPG"
        (self.body.ram if self.body.target == "Internal RAM" else self.body.card).append(name)
        return CameraFilePath("/", name)

    def file_get(self, folder: str, name: str, kind: int) -> CameraFile:
        self.body.check()
        return CameraFile(self.body.jpeg)

    def file_delete(self, folder: str, name: str) -> None:
        self.body.check()
        for store in (self.body.ram, self.body.card):
            if name in store:
                store.remove(name)

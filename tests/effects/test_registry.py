"""The effect registry: effects are found by scanning, declared once, validated the same way.

Numbers are ASCII only: superscript two, full-width and Arabic-Indic digits are refused although
Python's int() takes some of them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.effects import registry
from appliance.effects.base import Effect, OutputSpec, Param
from appliance.errors import UserFacingError


def test_the_self_test_is_registered() -> None:
    faces = registry.get_effect("faces")
    assert faces.key == "faces" and faces.photos == (1, 1)
    assert [o.name for o in faces.outputs] == ["result.jpg"]
    assert {"face_detection_short", "face_landmark"} <= set(faces.models)
    assert "base" not in registry.effects() and "registry" not in registry.effects()


def test_an_effect_is_one_module_that_declares_it(extra_effects_dir: Path) -> None:
    (extra_effects_dir / "zz_poster.py").write_text(textwrap.dedent("""
        from appliance.effects.base import Effect, OutputSpec
        EFFECT = Effect(key="zz_poster", title="Poster", summary="s", photos=(1, 2), faces=2,
                        gates=frozenset({"eyes_open"}), params=(),
                        outputs=(OutputSpec("poster.jpg", "image/jpeg"),), models=(),
                        run=lambda run: None)
    """))
    (extra_effects_dir / "zz_helpers.py").write_text("VALUE = 1\n")  # no EFFECT: not one
    (extra_effects_dir / "zz_parts").mkdir()  # a sub-package: an effect's helpers
    (extra_effects_dir / "zz_parts" / "__init__.py").write_text("EFFECT = 1\n")
    found = registry.effects()
    assert "zz_poster" in found and "faces" in found
    assert not any(key.startswith(("zz_helpers", "zz_parts")) for key in found)
    assert registry.get_effect("zz_poster").outputs[0].media_type == "image/jpeg"


def test_a_declaration_of_the_wrong_type_is_refused(extra_effects_dir: Path) -> None:
    (extra_effects_dir / "zz_broken.py").write_text("EFFECT = 'headshot'\n")
    with pytest.raises(TypeError, match=r"zz_broken\.EFFECT is a str"):
        registry.effects()


def test_unknown_effect_is_a_400_naming_the_known_ones() -> None:
    with pytest.raises(UserFacingError) as caught:
        registry.get_effect("karaoke")
    assert caught.value.code == "unknown_effect" and caught.value.status == 400
    assert "karaoke" in caught.value.message and "faces" in caught.value.remedy


STRENGTH = Param("strength", "float", 0.5, "how strong", minimum=0.0, maximum=1.0)
COUNT = Param("count", "int", 1, "how many", minimum=1, maximum=3)
STYLE = Param("style", "choice", "grey", "backdrop", choices=("grey", "blue"))
LOOP = Param("loop", "bool", False, "loop the video")


@pytest.mark.parametrize(("param", "raw", "value"), [
    (COUNT, "2", 2), (COUNT, 3, 3), (COUNT, 2.0, 2), (COUNT, " 1 ", 1), (COUNT, "+2", 2),
    (STRENGTH, "0.25", 0.25), (STRENGTH, ".5", 0.5), (STRENGTH, "1e-1", 0.1), (STRENGTH, 1, 1.0),
    (STYLE, "blue", "blue"), (LOOP, "yes", True), (LOOP, "false", False), (LOOP, True, True),
])
def test_parse_accepts(param: Param, raw: object, value: object) -> None:
    parsed = param.parse(raw)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(("param", "raw"), [
    (COUNT, "\u00b2"), (COUNT, "\uff13"), (COUNT, "\u0663"), (COUNT, "1_0"),
    (COUNT, "0x2"), (COUNT, ""),
    (COUNT, "4"), (COUNT, 0), (COUNT, 1.5), (COUNT, True), (COUNT, None), (COUNT, [1]),
    (STRENGTH, "nan"), (STRENGTH, "inf"), (STRENGTH, float("nan")), (STRENGTH, "1.5"),
    (STRENGTH, "-0.1"), (STRENGTH, "\uff10.5"), (STRENGTH, "1e"), (STRENGTH, "."),
    (STYLE, "Grey"), (STYLE, 1), (LOOP, "maybe"), (LOOP, 1),
])
def test_parse_refuses_with_the_name_and_range(param: Param, raw: object) -> None:
    with pytest.raises(UserFacingError) as caught:
        param.parse(raw)
    assert caught.value.code == "bad_param" and caught.value.status == 400
    assert param.name in caught.value.message
    assert param.describe() in caught.value.remedy


def test_describe_states_the_range() -> None:
    assert COUNT.describe() == "a whole number from 1 to 3"
    assert STYLE.describe() == "one of grey, blue"


def _effect(**overrides: object) -> Effect:
    fields: dict[str, object] = dict(
        key="kissish", title="t", summary="s", photos=(1, 2), faces=2, gates=frozenset(),
        params=(COUNT, STYLE), outputs=(OutputSpec("a.mp4", "video/mp4"),), models=(),
        run=lambda run: None)
    fields.update(overrides)
    return Effect(**fields)  # type: ignore[arg-type]


def test_validate_params_fills_defaults_and_refuses_unknown_names() -> None:
    effect = _effect()
    assert effect.validate_params({"count": "3"}) == {"count": 3, "style": "grey"}
    with pytest.raises(UserFacingError) as caught:
        effect.validate_params({"colour": "red"})
    assert caught.value.code == "bad_param" and "'colour'" in caught.value.message
    assert "count, style" in caught.value.remedy


def test_photo_count_and_faces_per_photo() -> None:
    kiss = _effect(params=())
    kiss.check_photo_count(1)
    kiss.check_photo_count(2)
    with pytest.raises(UserFacingError) as caught:
        kiss.check_photo_count(3)
    assert caught.value.code == "wrong_photo_count" and "1 to 2" in caught.value.message
    assert kiss.faces_per_photo({}, 1) == 2 and kiss.faces_per_photo({}, 2) == 1
    faces = registry.get_effect("faces")
    assert faces.faces_per_photo(faces.validate_params({"faces": "2"}), 1) == 2


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown gates"):
        _effect(gates=frozenset({"smile"}))
    with pytest.raises(ValueError, match="photos"):
        _effect(photos=(2, 1))
    with pytest.raises(ValueError, match="kind"):
        Param("x", "text", "", "h")
    with pytest.raises(ValueError, match="not a choice"):
        Param("x", "choice", "red", "h", choices=("blue",))
    with pytest.raises(ValueError, match="one label per choice"):
        Param("x", "choice", "blue", "h", choices=("blue", "red"), choice_labels=("Blue",))


def test_describe_is_json_for_the_menu() -> None:
    body = registry.get_effect("faces").describe()
    assert body["key"] == "faces" and body["photos"] == [1, 1]
    assert body["params"][0] == {"name": "faces", "kind": "int", "default": 1,
                                 "help": "how many people are in the photo", "minimum": 1,
                                 "maximum": 2, "choices": [], "label": "People in the photo",
                                 "choice_labels": []}


def test_guest_labels_default_to_the_help_and_the_choices() -> None:
    plain = Param("style", "choice", "grey", "backdrop colour", choices=("grey", "blue"))
    assert (plain.guest_label, plain.guest_choice_labels) == ("backdrop colour", ("grey", "blue"))
    named = Param("style", "choice", "grey", "backdrop colour", choices=("grey", "blue"),
                  label="Backdrop", choice_labels=("Grey", "Blue"))
    assert named.describe() == "one of grey, blue"  # the API and command line keep the values
    side = registry.get_effect("kiss").describe()["params"][1]
    assert side["choices"] == ["left", "right"]
    assert side["choice_labels"] == ["On the left", "On the right"]


def test_every_parameter_has_a_short_label_for_guests() -> None:
    for effect in registry.effects().values():
        for param in effect.params:
            assert param.label and len(param.label) <= 40, (effect.key, param.name)
            if param.kind == "choice":
                assert len(param.guest_choice_labels) == len(param.choices)


def test_command_line_pairs_and_help_come_from_the_declaration() -> None:
    effect = _effect()
    assert effect.params_from_pairs(["count=2", "style=blue"]) == {"count": 2, "style": "blue"}
    for bad in (["count"], ["=2"], ["count=9"], ["colour=red"]):
        with pytest.raises(UserFacingError) as caught:
            effect.params_from_pairs(bad)
        assert caught.value.code == "bad_param", bad
    assert effect.params_help().splitlines() == [
        "count: how many (a whole number from 1 to 3; default 1)",
        "style: backdrop (one of grey, blue; default grey)"]


def test_every_effect_needs_only_models_of_the_manifest() -> None:
    from appliance.effects.checks import effect_models, models_missing
    from appliance.models.manifest import load_manifest

    manifest = load_manifest()
    assert models_missing(manifest) == {}
    assert effect_models(load_config(env={})).ok
    trimmed = type(manifest)(manifest.path, manifest.sources,
                             {k: v for k, v in manifest.models.items() if k != "face_landmark"})
    needing = {key: ["face_landmark"] for key, effect in registry.effects().items()
               if "face_landmark" in effect.models}
    assert "faces" in needing
    assert models_missing(trimmed) == needing

import importlib
import pkgutil
import subprocess
import sys
import types

import pixfit


def test_public_api_is_pinned() -> None:
    assert sorted(pixfit.__all__) == [
        "ClientHints", "Config", "ConfigError", "Fit", "Flip", "FocalPoint", "Gravity",
        "NetworkClass", "Options", "OutputFormat", "PixfitError", "Plan", "Profile", "Rendered",
        "Timings", "blueprint", "configure", "create_app", "image_url", "parse_options", "plan",
        "render", "render_plan", "srcset",
    ]  # fmt: skip
    for name in pixfit.__all__:
        assert getattr(pixfit, name) is not None


def test_the_library_does_not_load_flask() -> None:
    code = (
        "import sys, pixfit; pixfit.render;"
        "print('flask' in sys.modules, 'prometheus_client' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def _modules() -> list[types.ModuleType]:
    names = sorted(info.name for info in pkgutil.iter_modules(pixfit.__path__))
    return [importlib.import_module(f"pixfit.{name}") for name in names if name != "__main__"]


def test_every_module_pins_its_public_names() -> None:
    for module in _modules():
        assert isinstance(getattr(module, "__all__", None), list), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_no_two_public_names_collide_and_none_shadows_a_module() -> None:
    # A name may be re-exported, but one name never means two different things.
    owners: dict[str, tuple[str, object]] = {}
    for module in [pixfit, *_modules()]:
        for name in module.__all__:
            value = getattr(module, name)
            seen = owners.setdefault(name, (module.__name__, value))
            assert seen[1] is value, f"{name} in {seen[0]} and {module.__name__}"
    submodules = {info.name for info in pkgutil.iter_modules(pixfit.__path__)}
    assert not submodules & set(owners), "a public name shadows a module"

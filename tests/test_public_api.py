import subprocess
import sys

import pixfit


def test_public_api_is_pinned() -> None:
    assert sorted(pixfit.__all__) == [
        "ClientHints", "Config", "ConfigError", "Fit", "Gravity", "NetworkClass", "Options",
        "OutputFormat", "PixfitError", "Plan", "Profile", "Rendered", "Timings", "blueprint",
        "configure", "create_app", "image_url", "parse_options", "plan", "render",
        "render_plan", "srcset",
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

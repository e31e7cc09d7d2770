import sys
from pathlib import Path

import pytest

from pixfit.config import SAMPLES_DIR, CacheKind, Config, ConfigError
from pixfit.profiles import NetworkClass


def test_defaults_match_the_design() -> None:
    config = Config()
    assert (config.server.host, config.server.port, config.server.prefix) == (
        "127.0.0.1",
        8080,
        "/images",
    )
    assert config.source.root == SAMPLES_DIR
    assert config.source.allowed_hosts == ()
    assert not config.source.allow_private_networks
    assert config.cache.kind == CacheKind.NONE
    assert config.security.strict_options
    assert config.default_class == NetworkClass.WIFI
    assert config.profiles[NetworkClass.TWO_G].budget == 25_000


def test_toml_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "pixfit.toml"
    path.write_text(
        'default_class = "4g"\n[server]\nport = 9000\n[source]\nallowed_hosts = ["a.example"]\n'
        "[profiles.3g]\nbudget = 50000\n"
    )
    config = Config.load({"PIXFIT_SERVER_PORT": "9100", "PIXFIT_CONFIG": str(path)})
    assert config.server.port == 9100
    assert config.source.allowed_hosts == ("a.example",)
    assert config.default_class == NetworkClass.FOUR_G
    assert config.profiles[NetworkClass.THREE_G].budget == 50_000
    assert config.profiles[NetworkClass.THREE_G].target == 70


@pytest.mark.parametrize(
    ("environ", "check"),
    [
        ({"PIXFIT_SOURCE_ROOT": "/srv/img"}, lambda c: c.source.root == Path("/srv/img")),
        (
            {"PIXFIT_SOURCE_ALLOWED_HOSTS": "a.com, b.com"},
            lambda c: c.source.allowed_hosts == ("a.com", "b.com"),
        ),
        (
            {"PIXFIT_SOURCE_ALLOW_PRIVATE_NETWORKS": "true"},
            lambda c: c.source.allow_private_networks,
        ),
        ({"PIXFIT_LIMITS_MAX_PIXELS": "1000"}, lambda c: c.limits.max_pixels == 1000),
        ({"PIXFIT_CACHE_KIND": "disk"}, lambda c: c.cache.kind == CacheKind.DISK),
        ({"PIXFIT_SECURITY_STRICT_OPTIONS": "0"}, lambda c: not c.security.strict_options),
        (
            {"PIXFIT_PROFILES_SLOW_2G_BUDGET": "9000"},
            lambda c: c.profiles[NetworkClass.SLOW_2G].budget == 9000,
        ),
        (
            {"PIXFIT_PROFILES_WIFI_BUDGET": "none"},
            lambda c: c.profiles[NetworkClass.WIFI].budget is None,
        ),
        ({"PIXFIT_DEFAULT_CLASS": "3g"}, lambda c: c.default_class == NetworkClass.THREE_G),
        (
            {"PIXFIT_CACHE_KIND": "redis", "PIXFIT_CACHE_URL": "unix:///run/redis.sock"},
            lambda c: c.cache.kind == CacheKind.REDIS and c.cache.url == "unix:///run/redis.sock",
        ),
        ({"HOME": "/root"}, lambda c: c == Config()),
        (
            {"PIXFIT_SERVER_MEASURE_RTT": "on", "PIXFIT_SERVER_TRUSTED_PROXIES": "10.0.0.7, ::1"},
            lambda c: c.server.measure_rtt and c.server.trusted_proxies == ("10.0.0.7", "::1"),
        ),
    ],
)
def test_environment_variables(environ: dict[str, str], check) -> None:  # type: ignore[no-untyped-def]
    assert check(Config.load(environ))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PIXFIT_SERVER_PORT": "http"}, "server.port must be a number"),
        ({"PIXFIT_SERVER_PORT": "70000"}, "server.port must be 1..65535"),
        ({"PIXFIT_SERVER_PROT": "80"}, "unknown configuration key server.prot"),
        ({"PIXFIT_BOGUS_KEY": "1"}, "unknown environment variable PIXFIT_BOGUS_KEY"),
        ({"PIXFIT_CACHE_KIND": "redis2"}, "cache.kind must be one of none, memory, disk, redis"),
        ({"PIXFIT_CACHE_KIND": "redis"}, r"cache\.url must be a redis://, rediss:// or unix://"),
        (
            {"PIXFIT_CACHE_KIND": "redis", "PIXFIT_CACHE_URL": "127.0.0.1:6379"},
            r"cache\.url must be a redis://.* got '127\.0\.0\.1:6379'",
        ),
        ({"PIXFIT_SOURCE_ALLOW_PRIVATE_NETWORKS": "maybe"}, "must be true or false"),
        ({"PIXFIT_PROFILES_5G_BUDGET": "1"}, "unknown network class"),
        ({"PIXFIT_PROFILES_3G_QUALITY_MIN": "91"}, r"quality_min <= quality_max"),
        ({"PIXFIT_PROFILES_3G_TARGET": "0"}, r"profiles\.3g\.target must be 1\.\.100"),
        ({"PIXFIT_PROFILES_WIFI_TARGET": "101"}, r"profiles\.wifi\.target must be 1\.\.100"),
        ({"PIXFIT_PROFILES_2G_BUDGET": "10"}, r"profiles\.2g\.budget must be 1000\.\."),
        ({"PIXFIT_LIMITS_MAX_PIXELS": "-1"}, "non-negative"),
        ({"PIXFIT_SERVER_PREFIX": "images/"}, "server.prefix must start with /"),
        ({"PIXFIT_LOG_LEVEL": "loud"}, "log.level"),
        (
            {"PIXFIT_SERVER_TRUSTED_PROXIES": "10.0.0.7,nginx.local"},
            r"server\.trusted_proxies: expected an IP address or network, got 'nginx\.local'",
        ),
        ({"PIXFIT_SERVER_RTT_HEADER": "X Client RTT"}, r"server\.rtt_header must be an HTTP"),
        ({"PIXFIT_SERVER_MEASURE_RTT": "sometimes"}, "server.measure_rtt must be true or false"),
        ({"PIXFIT_CONFIG": "/nonexistent/pixfit.toml"}, "cannot read config file"),
    ],
)
def test_bad_values_fail_with_their_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.load(environ)


def test_the_redis_kind_needs_the_redis_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'pixfit\[redis\]'"):
        Config().merged({"cache": {"kind": "redis", "url": "redis://127.0.0.1:6379/0"}})


def test_bad_toml_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\nmax_pixls = 5\n")
    with pytest.raises(ConfigError, match=r"limits\.max_pixls"):
        Config.from_toml(path)
    path.write_text("[limits\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml(path)


def test_as_dict_round_trips() -> None:
    config = Config().merged(
        {"source": {"allowed_hosts": ["x.example"]}, "profiles": {"2g": {"budget": 1000}}}
    )
    assert Config().merged(config.as_dict()) == config


def test_presets_from_toml_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "pixfit.toml"
    path.write_text(
        '[presets.card]\nw = 400\nh = 300\nfit = "cover"\nenlarge = true\n'
        "[presets.hero-wide]\nw = 1600\n[security]\npresets_only = true\n"
    )
    environ = {
        "PIXFIT_CONFIG": str(path),
        "PIXFIT_PRESETS_CARD_W": "500",  # the environment overrides one key of the file's
        "PIXFIT_PRESETS_THUMB_MAX_BYTES": "3000",  # option names with "_" stay whole
        "PIXFIT_PRESETS_MY_THUMB_WIDTH": "90",  # and preset names with "_" too
    }
    config = Config.load(environ)
    assert config.presets == {
        "card": {"w": "500", "h": "300", "fit": "cover", "enlarge": "1"},
        "hero-wide": {"w": "1600"},
        "thumb": {"max_bytes": "3000"},
        "my_thumb": {"width": "90"},
    }
    assert config.security.presets_only
    assert Config().merged(config.as_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"presets": {"card": {"w": "abc"}}}, r"presets\.card\.w: Expected an integer 1\.\.8192"),
        ({"presets": {"card": {"fit": "squash"}}}, r"presets\.card\.fit: Expected one of"),
        ({"presets": {"card": {"pos": "fp:2,0"}}}, r"presets\.card\.pos: Expected fp:X,Y"),
        ({"presets": {"card": {"rotate": 45}}}, r"presets\.card\.rotate: .* for rotate"),
        ({"presets": {"card": {"wdith": 4}}}, r"presets\.card\.wdith: Unknown option 'wdith'"),
        ({"presets": {"card": {"preset": "x"}}}, r"presets\.card\.preset: a preset cannot name"),
        ({"presets": {"card": {"w": [1, 2]}}}, r"presets\.card\.w must be a string or a number"),
        ({"presets": {"card": {"fit": "cover", "forcefit": 1}}}, r"presets\.card: .*forcefit"),
        ({"presets": {"a b": {"w": 4}}}, r"presets\.a b: a preset name must be"),
        ({"presets": {"card": 4}}, r"presets\.card must be a table"),
        ({"presets": 4}, r"presets must be a table"),
        ({"security": {"presets_only": True}}, r"security\.presets_only is true but no \[presets"),
        (
            {"limits": {"max_output_edge": 300}, "presets": {"card": {"w": 400}}},
            r"presets\.card\.w: Expected an integer 1\.\.300",
        ),
    ],
)
def test_bad_presets_fail_at_start_up_with_their_key(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        Config().merged(data)


def test_preset_environment_variables_name_an_option() -> None:
    with pytest.raises(ConfigError, match="PIXFIT_PRESETS_CARD names no option"):
        Config.load({"PIXFIT_PRESETS_CARD": "1"})
    with pytest.raises(ConfigError, match=r"presets\.card\.w: Expected an integer"):
        Config.load({"PIXFIT_PRESETS_CARD_W": "wide"})

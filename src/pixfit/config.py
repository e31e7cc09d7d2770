"""Configuration: defaults, then a TOML file, then PIXFIT_* variables, then flags.

Every layer goes through the same validation, so a bad key or value fails at start-up
with its full name (`source.max_source_bytes`), whichever layer it came from.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import tempfile
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from pixfit.errors import BadOption
from pixfit.options import ALIASES, OPTIONS, PRESET, Presets, parse_options
from pixfit.profiles import DEFAULT_PROFILES, NetworkClass, Profile
from pixfit.rtt import parse_networks

__all__ = [
    "SAMPLES_DIR",
    "CacheConfig",
    "CacheKind",
    "Config",
    "ConfigError",
    "LimitsConfig",
    "LogConfig",
    "SecurityConfig",
    "ServerConfig",
    "SourceConfig",
    "SourceStore",
    "default_cache_path",
    "env_overrides",
]

SAMPLES_DIR = Path(__file__).parent / "samples"
ENV_PREFIX = "PIXFIT_"
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")
# An HTTP header name (RFC 9110's token), and no underscore: WSGI folds "_" into "-".
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^`|~-]+")


def default_cache_path() -> str:
    """The disk cache's folder when `cache.path` is not set: pixfit-cache in the temp dir."""
    return os.path.join(tempfile.gettempdir(), "pixfit-cache")


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it."""


class CacheKind(StrEnum):
    """Where rendered variants are kept between requests."""

    NONE = "none"
    MEMORY = "memory"
    DISK = "disk"
    REDIS = "redis"
    S3 = "s3"


class SourceStore(StrEnum):
    """Where the images named by a path live: a folder, or an S3-compatible bucket."""

    LOCAL = "local"
    S3 = "s3"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How `pixfit serve` listens."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Worker processes; one per core, as libvips with concurrency 1 scales best that way.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # URL prefix the images are served under (mod_wsgi's WSGIScriptAlias supplies its own).
    prefix: str = "/images"
    # Cache-Control sent with every image (errors get no-store).
    cache_control: str = "public, max-age=86400"
    # A worker is replaced after this many renders (plus up to 10%, so that workers do not
    # all restart at once); 0 never. Cache hits and 304s do not count.
    recycle_after_renders: int = 2000
    # Seconds a stopping server (SIGTERM) may take: it fails /readyz, answers new renders
    # with 503 and Retry-After, finishes the requests in flight, then exits; at the
    # latest after this long.
    grace_period: int = 30
    # Disk-cache hits are handed to Apache's mod_xsendfile as an `X-Sendfile` header, so
    # that Apache sends the file itself (needs `XSendFile On` and `XSendFilePath` naming
    # the cache folder). Off: the file goes out through wsgi.file_wrapper.
    x_sendfile: bool = False
    # `pixfit serve` answers memory and disk hits and 304s in each worker's event loop,
    # not in a thread (inloop.py). Turn it off when the source folder or the disk cache is
    # on network storage whose stat may stall: in the loop that stalls every connection
    # of the worker, in a thread only the request.
    hits_in_loop: bool = True
    # Seconds a client has to send a whole request, headers and body, before `pixfit serve`
    # answers 408 and closes. Requests are read by each worker's event loop, never by a
    # render thread, so slow senders cost a socket each, not a thread.
    request_timeout: float = 10.0
    # Seconds a client reading an answer may take no bytes at all before it is dropped.
    send_timeout: float = 30.0
    # Class requests that carry neither `bw` nor a network hint (Firefox, Safari) by their
    # round-trip time: the kernel's smoothed RTT of the client's socket (TCP_INFO, Linux),
    # or `rtt_header` from `trusted_proxies`. Such answers are sent `private`.
    measure_rtt: bool = False
    # The header a proxy in front sets to the client's RTT in microseconds (nginx:
    # `proxy_set_header X-Client-RTT $tcpinfo_rtt;`); read only from `trusted_proxies`.
    rtt_header: str = "X-Client-RTT"
    # Addresses or networks (10.0.0.0/8) of the proxies whose `rtt_header` is believed.
    # From them the socket is not measured: its RTT is the proxy's.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """Where images may come from."""

    # Where paths are read: files under `root`, or objects in `s3_bucket`.
    kind: SourceStore = SourceStore.LOCAL
    root: Path = SAMPLES_DIR
    # Hosts URL sources may name; empty turns URL sources off, "*" allows any public host.
    allowed_hosts: tuple[str, ...] = ()
    # Allow URLs that resolve to loopback or private addresses (tests and intranets only).
    allow_private_networks: bool = False
    # Seconds to connect, and between bytes, for URL sources.
    fetch_timeout: float = 10.0
    # Largest source accepted, in bytes, for files, objects and URLs alike.
    max_source_bytes: int = 50_000_000
    # The bucket of kind s3, and the folder in it that paths are under ("" for the top).
    s3_bucket: str = ""
    s3_prefix: str = ""
    # Any S3-compatible store (MinIO, Ceph, R2...); empty means AWS itself. Credentials
    # come from the standard AWS variables and files, never from this config.
    s3_endpoint_url: str = ""
    # Empty means the AWS default chain (AWS_REGION, ~/.aws/config).
    s3_region: str = ""


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Bounds on the work one request may cause."""

    # Largest source accepted, in pixels (width x height), checked before decoding.
    max_pixels: int = 100_000_000
    # Largest source among those libvips must hold whole while decoding, whatever the
    # output size: progressive JPEG (every DCT coefficient), interlaced PNG, GIF (the
    # canvas) and AVIF. A 1 KB GIF or progressive JPEG claiming 10000x10000 used to cost
    # 1.6-2 s and 300-430 MiB; others stream, and shrink on load.
    max_buffered_pixels: int = 50_000_000
    # Longest edge a source may have, in pixels. Decoding costs per row as well as per
    # pixel: a 1x50,000,000 PNG is under max_pixels yet takes 16 s, a 1x65,535 strip 0.03 s.
    max_source_edge: int = 65_535
    # Most frames a source may declare (an animation, or a HEIF's top-level images),
    # checked from the header: every frame of an animation is decoded and resized.
    max_frames: int = 1000
    # Most pixels all of an animation's frames may hold together (the canvas times the
    # frame count), in the source and in the output, checked before decoding: the frames
    # are decoded whole, and the output is held in memory (4 bytes a pixel) to encode.
    # 50 MP is max_buffered_pixels, the bound for one buffered still.
    max_animation_pixels: int = 50_000_000
    # Longest edge any output may have, in device pixels; also the upper bound of w and h.
    max_output_edge: int = 8192
    # Most pixels (width x height) any output may have; 8000x6000 fits.
    max_output_pixels: int = 50_000_000
    # Most memory one render may need, in bytes, as estimated from the header and the plan
    # before decoding (memory.py): decoder buffers, the display image and the encoder's
    # working set. Over it the answer is 413. 512 MiB keeps a 2-worker server under 1 GiB
    # with one big render in flight; a 9000x9000 PNG as an 8192 px WebP needed 1.2 GiB.
    max_render_memory: int = 512 * 1024 * 1024
    # Renders running at once in one worker process. One per worker (and one worker per
    # core) keeps every core busy, and memory low: a progressive JPEG decode buffers the
    # whole source's coefficients (about 90 MB for 5120x2880) whatever the shrink-on-load.
    max_concurrent: int = 1
    # Renders waiting for a slot in one worker process; past this the answer is 503.
    max_queue: int = 8
    # Seconds one render may take before it is cut and answered with 503.
    render_timeout: float = 20.0


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The result cache."""

    kind: CacheKind = CacheKind.NONE
    # Directory of the disk cache; by default pixfit-cache under the system temp dir (TMPDIR),
    # spelled out so that `pixfit config` prints the folder really used. Empty means that too.
    path: str = field(default_factory=default_cache_path)
    # Server of the redis cache (redis://, rediss:// or unix://); only kind redis reads it.
    url: str = ""
    # The bucket, folder, store and region of kind s3 (as in [source]; empty endpoint and
    # region mean AWS's own).
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    # Upper bound of the cache's size in bytes. Redis is bounded by its own maxmemory
    # instead; there this only turns away a single variant larger than it.
    max_bytes: int = 256_000_000
    # Seconds a variant of a URL source is served from the cache without fetching the URL
    # again; the origin's Cache-Control max-age can only shorten it. After that, a fetch
    # whose ETag or Last-Modified is unchanged still reuses the variant (no decode).
    url_max_age: int = 3600
    # Reduced masters (per worker process, in memory): a JPEG source's first render keeps
    # it decoded, shrunk on load for displays up to `master_edge` device px, and later
    # variants of that source resize from it instead of decoding it again. Bytes of
    # pixels held per worker; 0 turns masters off.
    master_bytes: int = 64_000_000
    # The longest display edge (device px) a master serves; larger displays decode alone.
    master_edge: int = 1280


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Where logs go."""

    # Application log file; empty means stderr.
    file: str = ""
    level: str = "info"
    # One line per request; empty means stderr.
    access_file: str = ""


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """Signing and strictness."""

    # HMAC keys; the first signs, any verifies (for rotation). Empty allows unsigned URLs.
    signing_keys: tuple[str, ...] = ()
    # Reject unknown query options instead of ignoring them.
    strict_options: bool = True
    # When set, the only values w/h and q may take, so nobody can fill a cache with every
    # width from 1 to 8192 (empty allows any value in range).
    allowed_widths: tuple[int, ...] = ()
    allowed_qualities: tuple[int, ...] = ()
    # Bearer tokens that may call POST /_pixfit/purge; empty turns the endpoint off (404).
    admin_tokens: tuple[str, ...] = ()
    # Refuse every image request that is not `?preset=NAME` alone, so the variants (and
    # the CPU they cost) are the operator's presets times the network classes.
    presets_only: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """The whole effective configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    log: LogConfig = field(default_factory=LogConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    profiles: Mapping[NetworkClass, Profile] = field(default_factory=lambda: DEFAULT_PROFILES)
    # The class used when neither `bw` nor a network hint says otherwise.
    default_class: NetworkClass = NetworkClass.WIFI
    # Named option sets for `?preset=NAME`: each maps option names to values as a query
    # string would give them ([presets.card] w = 400 becomes {"card": {"w": "400"}}).
    presets: Presets = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: str | Path) -> Config:
        """Defaults overridden by one TOML file."""
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
        return cls().merged(data)

    @classmethod
    def load(cls, environ: Mapping[str, str], path: str | Path | None = None) -> Config:
        """Defaults, then the TOML file (`path` or PIXFIT_CONFIG), then PIXFIT_* variables."""
        path = path or environ.get("PIXFIT_CONFIG") or None
        base = cls.from_toml(path) if path else cls()
        return base.merged(env_overrides(environ))

    def merged(self, data: Mapping[str, Any]) -> Config:
        """A copy with the values of a nested mapping (as TOML gives) applied and checked."""
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key == "default_class":
                changes[key] = _coerce(NetworkClass, value, key)
            elif key == "profiles":
                changes[key] = _merged_profiles(self.profiles, value)
            elif key == "presets":
                changes[key] = _merged_presets(self.presets, value)
            elif key in _SECTIONS:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{key} must be a table of keys")
                changes[key] = _merged_section(getattr(self, key), value, key)
            else:
                raise ConfigError(f"unknown configuration key {key!r}")
        return _checked(dataclasses.replace(self, **changes))

    def as_dict(self) -> dict[str, Any]:
        """Plain values, ready to print as TOML."""
        out: dict[str, Any] = {"default_class": str(self.default_class)}
        for name in _SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: _plain(getattr(section, f.name)) for f in fields(section)}
        out["profiles"] = {
            str(cls): {
                f.name: _plain(getattr(profile, f.name))
                for f in fields(profile)
                if getattr(profile, f.name) is not None
            }
            for cls, profile in self.profiles.items()
        }
        out["presets"] = {name: dict(values) for name, values in self.presets.items()}
        return out


_SECTIONS = ("server", "source", "limits", "cache", "log", "security")


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn PIXFIT_<SECTION>_<KEY> variables into the nested mapping `merged` takes."""
    data: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "PIXFIT_CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if rest == "default_class":
            data["default_class"] = value
        elif rest.startswith("presets_"):
            preset, option = _preset_variable(rest[len("presets_") :], name)
            data.setdefault("presets", {}).setdefault(preset, {})[option] = value
        elif rest.startswith("profiles_"):
            # PIXFIT_PROFILES_SLOW_2G_BUDGET: the class is the longest known prefix.
            tail = rest[len("profiles_") :]
            for cls in sorted(NetworkClass, key=lambda c: -len(c.value)):
                prefix = cls.value.replace("-", "_") + "_"
                if tail.startswith(prefix):
                    profiles = data.setdefault("profiles", {})
                    profiles.setdefault(cls.value, {})[tail[len(prefix) :]] = value
                    break
            else:
                raise ConfigError(f"unknown network class in environment variable {name}")
        else:
            section, _, key = rest.partition("_")
            if section not in _SECTIONS or not key:
                raise ConfigError(f"unknown environment variable {name}")
            data.setdefault(section, {})[key] = value
    return data


# Option names as environment variables spell them: lower case, "_" for "-".
_OPTION_NAMES = sorted({name.replace("-", "_") for name in (*OPTIONS, *ALIASES)}, key=len)
_PRESET_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _preset_variable(tail: str, variable: str) -> tuple[str, str]:
    """PIXFIT_PRESETS_HERO_MAX_BYTES: the option is the longest name that ends the tail."""
    for option in reversed(_OPTION_NAMES):
        name = tail.removesuffix(f"_{option}")
        if name != tail and name:
            return name, option
    raise ConfigError(f"environment variable {variable} names no option after the preset")


def _merged_presets(presets: Presets, values: Any) -> dict[str, dict[str, str]]:
    """The presets with a TOML or environment table of them applied, values as strings."""
    if not isinstance(values, Mapping):
        raise ConfigError("presets must be a table of named option tables")
    merged = {name: dict(options) for name, options in presets.items()}
    for name, table in values.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"presets.{name} must be a table of options")
        if not _PRESET_NAME.fullmatch(name):
            raise ConfigError(
                f"presets.{name}: a preset name must be 1-64 letters, digits, '_' or '-'"
            )
        options = merged.setdefault(name, {})
        for key, value in table.items():
            if key == PRESET:
                raise ConfigError(f"presets.{name}.{key}: a preset cannot name another preset")
            if not isinstance(value, str | int | float):  # bool is an int
                raise ConfigError(
                    f"presets.{name}.{key} must be a string or a number, got {value!r}"
                )
            # As a query string spells it: TOML's `enlarge = true` is enlarge=1.
            options[key] = str(int(value)) if isinstance(value, bool) else str(value)
    return merged


def _merged_section(section: Any, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(type(section))
    changes = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown configuration key {where}.{key}")
        changes[key] = _coerce(hints[key], value, f"{where}.{key}")
    return dataclasses.replace(section, **changes)


def _merged_profiles(
    profiles: Mapping[NetworkClass, Profile], values: Any
) -> dict[NetworkClass, Profile]:
    if not isinstance(values, Mapping):
        raise ConfigError("profiles must be a table of network classes")
    merged = dict(profiles)
    for name, table in values.items():
        cls = _coerce(NetworkClass, name, f"profiles.{name}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"profiles.{name} must be a table of keys")
        merged[cls] = _merged_section(merged[cls], table, f"profiles.{name}")
    return merged


def _coerce(kind: Any, value: Any, where: str) -> Any:
    """Check `value` against the field type `kind`, converting strings from the environment."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None or (isinstance(value, str) and value.lower() in ("", "none")):
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _coerce(inner, value, where)
    if origin is tuple:
        items = (
            [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        )
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(args[0], item, where) for item in items)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if kind in (int, float):
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if isinstance(value, bool) or number < 0:
            raise ConfigError(f"{where} must be a non-negative number, got {value!r}")
        return number
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        try:
            return kind(str(value).lower())
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise ConfigError(f"{where} must be one of {allowed}, got {value!r}") from None
    if kind is Path:
        return Path(str(value))
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where} cannot be set")


def _checked(config: Config) -> Config:
    """Cross-field checks that a single value's type cannot express."""
    if not 1 <= config.server.port <= 65535:
        raise ConfigError(f"server.port must be 1..65535, got {config.server.port}")
    if config.server.workers < 1:
        raise ConfigError("server.workers must be at least 1")
    if config.server.prefix and (
        not config.server.prefix.startswith("/") or config.server.prefix.endswith("/")
    ):
        raise ConfigError(
            f"server.prefix must start with / and not end with one, got {config.server.prefix!r}"
        )
    if not _HEADER_NAME.fullmatch(config.server.rtt_header):
        raise ConfigError(
            f"server.rtt_header must be an HTTP header name, got {config.server.rtt_header!r}"
        )
    try:
        parse_networks(config.server.trusted_proxies)
    except ValueError as error:
        raise ConfigError(f"server.trusted_proxies: {error}") from None
    if config.limits.max_concurrent < 1:
        raise ConfigError("limits.max_concurrent must be at least 1")
    if min(config.limits.max_output_edge, config.limits.max_pixels) < 1:
        raise ConfigError("limits.max_output_edge and limits.max_pixels must be at least 1")
    for key in ("max_buffered_pixels", "max_frames", "max_animation_pixels"):
        if getattr(config.limits, key) < 1:
            raise ConfigError(f"limits.{key} must be at least 1")
    if min(config.limits.max_output_pixels, config.limits.max_render_memory) < 1:
        raise ConfigError(
            "limits.max_output_pixels and limits.max_render_memory must be at least 1"
        )
    if config.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"log.level must be debug, info, warning or error, got {config.log.level!r}"
        )
    _check_redis(config.cache)
    _check_s3(config)
    _check_presets(config)
    if not config.cache.path:
        cache = dataclasses.replace(config.cache, path=default_cache_path())
        config = dataclasses.replace(config, cache=cache)
    for cls, profile in config.profiles.items():
        if not 1 <= profile.quality_min <= profile.quality_max <= 100:
            raise ConfigError(
                f"profiles.{cls}: need 1 <= quality_min <= quality_max <= 100, "
                f"got {profile.quality_min} and {profile.quality_max}"
            )
        if not 1 <= profile.max_dpr <= 4:
            raise ConfigError(f"profiles.{cls}.max_dpr must be 1..4, got {profile.max_dpr}")
        if not 1 <= profile.target <= 100:
            raise ConfigError(
                f"profiles.{cls}.target must be 1..100 (SSIMULACRA2), got {profile.target}"
            )
        if profile.budget is not None and not 1_000 <= profile.budget <= 1_000_000_000:
            raise ConfigError(
                f"profiles.{cls}.budget must be 1000..1000000000 bytes or none, "
                f"got {profile.budget}"
            )
    return config


def _check_presets(config: Config) -> None:
    """Every preset parses as a URL's options would, each key on its own and all together."""
    max_edge = config.limits.max_output_edge
    for name, options in config.presets.items():
        try:
            for key, value in options.items():
                where = f"presets.{name}.{key}"
                parse_options({key: value}, max_edge=max_edge)
            where = f"presets.{name}"
            parse_options(options, max_edge=max_edge)
        except BadOption as error:
            raise ConfigError(f"{where}: {error}") from None
    if config.security.presets_only and not config.presets:
        raise ConfigError("security.presets_only is true but no [presets.NAME] table is set")


def _check_redis(cache: CacheConfig) -> None:
    if cache.kind != CacheKind.REDIS:
        return
    if not cache.url.startswith(REDIS_URL_SCHEMES):
        raise ConfigError(
            "cache.url must be a redis://, rediss:// or unix:// URL when cache.kind is redis, "
            f"got {cache.url!r}"
        )
    # Checked here, not when the cache is made: `pixfit serve` makes it in each gunicorn
    # worker, where an error ends in "Worker failed to boot" instead of this message.
    if importlib.util.find_spec("redis") is None:
        raise ConfigError("cache.kind redis needs the redis package: pip install 'pixfit[redis]'")


def _check_s3(config: Config) -> None:
    wanted = [
        (section, bucket)
        for section, kind, bucket in (
            ("source", config.source.kind == SourceStore.S3, config.source.s3_bucket),
            ("cache", config.cache.kind == CacheKind.S3, config.cache.s3_bucket),
        )
        if kind
    ]
    for section, bucket in wanted:
        if not bucket:
            raise ConfigError(f"{section}.s3_bucket must name a bucket when {section}.kind is s3")
    if wanted and importlib.util.find_spec("boto3") is None:
        raise ConfigError("kind s3 needs the boto3 package: pip install 'pixfit[s3]'")


def _plain(value: Any) -> Any:
    if isinstance(value, Path | StrEnum):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value

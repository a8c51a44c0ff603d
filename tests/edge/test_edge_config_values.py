"""Values of the edge's own settings (memory budget, token file) that must fail as one clear error."""

from __future__ import annotations

import pytest

from mvstylizer.edge.memory import parse_size


@pytest.mark.parametrize("text", ["1e309", "inf", "INF", "1e308G", "Infinity"])
def test_parse_size_too_large_is_a_value_error(text):
    # API callers (not only the CLI, which used to catch OverflowError itself) expect ValueError for bad sizes.
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["nan", "-inf", "0", "-1G"])
def test_parse_size_not_positive_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_size(text)


def _token_file(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    path.chmod(0o600)
    return path


def test_token_file_larger_than_the_cap_is_refused(tmp_path, monkeypatch):
    from mvstylizer.edge import auth

    # A small cap stands in for the real one so that the test writes kilobytes, not megabytes.
    monkeypatch.setattr(auth, "MAX_TOKEN_FILE_BYTES", 4096, raising=False)
    lines = [f"client{i} tok-{i:06d}-Zq8xWv3LpN7rTb2K stylize" for i in range(200)]
    f = _token_file(tmp_path / "tokens", lines)
    assert f.stat().st_size > 4096
    with pytest.raises(auth.UserError, match=r"token file .*tokens is larger than"):
        auth.TokenSet.from_file(f)


def test_token_file_of_thousands_of_tokens_is_under_the_cap(tmp_path):
    import secrets

    from mvstylizer.edge.auth import MAX_TOKEN_FILE_BYTES, TokenSet

    lines = [f"phone-{i:05d} {secrets.token_urlsafe()} stylize,metrics" for i in range(5_000)]
    f = _token_file(tmp_path / "tokens", lines)
    assert f.stat().st_size * 20 < MAX_TOKEN_FILE_BYTES  # room for 100,000 such tokens
    assert len(TokenSet.from_file(f).entries) == 5_000


@pytest.mark.parametrize("flags", [["--memory-budget", "8"], ["--memory-budget", "1K"], ["--workers", "100000"]],
                         ids=" ".join)
def test_a_budget_that_leaves_no_usable_frame_is_refused_at_start(capsys, monkeypatch, flags):
    """`--memory-budget 8` (its unit forgotten) started an edge that refused every frame: "at most 1
    pixels per image". Now it does not start: one line, status 2, before the port is bound."""
    from mvstylizer.cli.main import main
    from mvstylizer.edge.server import serve

    def no_bind(host: str, port: int):
        raise AssertionError("the edge went on to bind its port")

    monkeypatch.setattr(serve, "_bind", no_bind)
    code = main(["edge", "serve", "--port", "18499", "--models", "reinhard", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: a memory budget of "), err
    assert "less than the phone's 262144 (512x512 key frames)" in err

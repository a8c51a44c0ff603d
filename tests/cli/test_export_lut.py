"""`mvstylizer export-lut`: which models have a LUT export, said alike by --help and the refusal, and the
warning stylize gives for a style photo too small or too thin to hold a look."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mvstylizer.cli import main


def test_help_and_refusals_name_the_one_model_with_a_lut_export(tmp_path, style, capsys):
    # The help said "only global models have a LUT: dncm", and mk and reinhard, global both, were
    # refused with "it has no LUT export yet".
    with pytest.raises(SystemExit):
        main(["export-lut", "--help"])
    assert "only dncm (the default) has a LUT export" in " ".join(capsys.readouterr().out.split())
    for model, why in (("mk", "only dncm has a LUT export (mk is global too, but has no LUT export yet)"),
                       ("reinhard", "only dncm has a LUT export (reinhard is global too, but has no LUT export yet)"),
                       ("regions", "its look varies over the picture")):
        out = tmp_path / f"{model}.cube"
        assert main(["export-lut", "--style", str(style), "-o", str(out), "--model", model]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot export {model} as a LUT: {why}") and \
            err.endswith("; `export-lut --model dncm` writes a global look\n"), err
        assert not out.exists()


@pytest.mark.parametrize(("h", "w", "warned"), [(1, 1, True), (8, 100, True), (64, 64, False)])
def test_a_style_too_small_or_thin_gets_the_warning_stylize_gives(tmp_path, capsys, h, w, warned):
    photo = tmp_path / "st.png"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    assert main(["export-lut", "--style", str(photo), "-o", str(tmp_path / "look.cube"), "--size", "2"]) == 0
    err = capsys.readouterr().err
    assert (f"warning: style st.png is {w}x{h}: a style is matched by its colours" in err) == warned, err

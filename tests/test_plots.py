"""Pictures are saved whole or not at all, and labels the font cannot draw cost one note per
picture instead of a warning per character."""
import warnings

import matplotlib.pyplot as plt
import pytest

from train.plots import save_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_characters_the_font_lacks_give_one_note(tmp_path, capsys):
    figure, axis = plt.subplots()
    # Private-use code points: no font that matplotlib ships or finds draws them.
    axis.set_title("class \ue000\ue001 and class \ue000")
    save_figure(figure, tmp_path / "confusion.png")
    assert capsys.readouterr().err == ("note: confusion.png: the font has no glyph for 2 "
                                       "character(s) of the labels, drawn as boxes\n")
    assert (tmp_path / "confusion.png").read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in tmp_path.iterdir()] == ["confusion.png"]  # no temporary left


def test_other_warnings_still_show(tmp_path, capsys):
    figure, _ = plt.subplots()
    original = figure.savefig

    def savefig_with_a_warning(*args, **kwargs):
        warnings.warn("a real problem", RuntimeWarning)
        return original(*args, **kwargs)

    figure.savefig = savefig_with_a_warning
    with pytest.warns(RuntimeWarning, match="a real problem"):
        save_figure(figure, tmp_path / "curves.png")
    assert "note:" not in capsys.readouterr().err

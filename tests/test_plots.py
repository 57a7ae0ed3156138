"""Pictures are saved whole or not at all, labels the font cannot draw cost one note per
picture instead of a warning per character, and long class names fit their titles."""
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

from edgekit.train import plots
from edgekit.train.plots import save_figure

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


def test_long_class_names_are_cut_to_fit_the_sample_titles(tmp_path, monkeypatch):
    # Names such as "common_house_sparrow_(Passer_domesticus)" ran into the next title.
    names = ["common_house_sparrow_(Passer_domesticus)", "cat"]
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, target: drawn.append(figure))
    plots.sample_predictions(np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 1]),
                             np.array([[0.9, 0.1], [0.8, 0.2]]), names, tmp_path / "s.png")
    titles = [axis.get_title() for axis in drawn[0].axes[:2]]
    assert titles == ["common_house_spar\u2026 (0.90)\ntrue: common_house_spar\u2026",
                      "common_house_spar\u2026 (0.80)\ntrue: cat"]

"""Split protocols: sizes, stratification, no overlap, determinism, bad --split values."""
import numpy as np
import pytest

from edge_runtime.errors import UserError
from edgekit.train.splits import SplitSpec, parse_split, stratified_split


def test_parse_split():
    assert parse_split("standard") == SplitSpec(None)
    assert parse_split("70/15/15").percentages == (70, 15, 15)
    assert str(parse_split("80/10/10")) == "80/10/10"


@pytest.mark.parametrize("bad", ["70/15", "70/20/20", "a/b/c", "100/0/0", "-10/55/55", ""])
def test_bad_split_is_a_user_error(bad):
    with pytest.raises(UserError, match="bad --split"):
        parse_split(bad)


def test_stratified_split_sizes_strata_and_overlap():
    labels = np.repeat(np.arange(10), 600)  # 6,000 images, 600 per class
    train, val, test = stratified_split(labels, [0.15, 0.15], seed=3)
    assert (len(train), len(val), len(test)) == (4200, 900, 900)
    for part, per_class in ((train, 420), (val, 90), (test, 90)):
        assert np.all(np.bincount(labels[part], minlength=10) == per_class)
    together = np.concatenate([train, val, test])
    assert len(np.unique(together)) == len(labels)


def test_stratified_split_is_seeded():
    labels = np.repeat(np.arange(3), 50)
    first = stratified_split(labels, [0.2], seed=7)
    again = stratified_split(labels, [0.2], seed=7)
    other = stratified_split(labels, [0.2], seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])


def test_too_few_images_to_split():
    with pytest.raises(UserError, match="class 'dog' has only 2 images: too few"):
        stratified_split(np.array([0, 0, 0, 1, 1]), [0.1, 0.1], seed=0, class_names=["cat", "dog"])
    with pytest.raises(UserError, match="class 'dog' has only 1 image: too few"):
        stratified_split(np.array([0, 0, 0, 1]), [0.1, 0.1], seed=0, class_names=["cat", "dog"])


def test_a_small_class_still_gets_a_validation_and_a_test_image():
    # 3 cats among 40 dogs: a 10% share rounds to no cat at all, which would leave the cats
    # out of the test accuracy without a word.
    labels = np.array([0] * 3 + [1] * 40)
    train, val, test = stratified_split(labels, [0.1, 0.1], seed=0)
    for part, dogs in ((train, 32), (val, 4), (test, 4)):
        assert np.bincount(labels[part], minlength=2).tolist() == [len(part) - dogs, dogs]
    assert [np.count_nonzero(labels[part] == 0) for part in (train, val, test)] == [1, 1, 1]
    assert len(stratified_split(labels, [0.0], seed=0)[1]) == 0  # a zero share stays empty

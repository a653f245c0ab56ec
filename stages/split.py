"""Stage ``split``: stratified train/test split on income category (the reference split), then
a validation slice held out of train.

The test split is the final report's, read once by ``register``. The validation slice is
the experiments' honest score: no stage before ``register`` reads it (every choice, from the
imputer to the hyperparameters, is made by cross-validation on train alone), so the RMSE the
register stage measures on it (``reports/register/validation.json``) carries no selection
optimism, and ``dvc exp show`` ranks experiments on it (docs/experiments.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from housing import stage
from housing.contract import ContractError, check_schema
from housing.io import write_parquet
from housing.params.split import SplitParams

logger = logging.getLogger(__name__)

RAW = Path("data/raw/housing.csv")
TRAIN, TEST = Path("data/split/train.parquet"), Path("data/split/test.parquet")
VALIDATION = Path("data/split/validation.parquet")


def income_category(income: pd.Series, bins: Sequence[float]) -> pd.Series:
    """Bucket ``median_income`` into the strata used by the reference split."""
    edges = [float(b) for b in bins]
    return pd.cut(income, bins=edges, labels=range(1, len(edges)))


def split(
    df: pd.DataFrame, *, test_size: float, seed: int, income_bins: Sequence[float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split on income category; row order inside each part is the source order."""
    strata = income_category(df["median_income"], income_bins)
    if strata.isna().any():
        raise stage.StageError(
            f"{int(strata.isna().sum())} row(s) have median_income outside split.income_bins"
        )
    train, test = train_test_split(df, test_size=test_size, stratify=strata, random_state=seed)
    return train.sort_index().reset_index(drop=True), test.sort_index().reset_index(drop=True)


def hold_out(
    train: pd.DataFrame, *, size: float, seed: int, income_bins: Sequence[float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation): ``size`` of ``train`` held out, stratified as :func:`split`."""
    return split(train, test_size=size, seed=seed, income_bins=income_bins)


def main() -> None:
    p = stage.params("split", SplitParams)
    df = pd.read_csv(RAW)
    check_schema(df, with_target=True, what=str(RAW))
    train, test = split(df, test_size=p.test_size, seed=p.seed, income_bins=p.income_bins)
    train, validation = hold_out(
        train, size=p.validation_size, seed=p.seed, income_bins=p.income_bins
    )
    write_parquet(TRAIN, train)
    write_parquet(VALIDATION, validation)
    write_parquet(TEST, test)
    logger.info(
        "split %d rows into %d train / %d validation / %d test",
        len(df),
        len(train),
        len(validation),
        len(test),
    )


if __name__ == "__main__":
    stage.run(main, expected=(ContractError,))

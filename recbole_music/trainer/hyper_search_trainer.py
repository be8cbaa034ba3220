"""HyperSearchTrainer: fit in one pass, then choose the hyper-parameters on validation users.

Every combination of the model's ``search_grid`` (YAML; the YAML defaults first) is evaluated on
the validation users by the protocol's evaluator, and the best by ``valid_metric`` is kept (a tie
keeps the earlier candidate, so the defaults win ties). Each candidate's score and the chosen
values are logged (``<Model> chosen on validation users: ...``) and saved in the checkpoint. Test
users are never evaluated during the search. Without validation users (``--valid_ratio=0``) the
search is skipped and the YAML defaults are used, as the log says. Every evaluation logs how many
users had no neighbourhood signal and were ranked by popularity alone (a count, not a list).
"""

from __future__ import annotations

from recbole.utils import calculate_valid_score, set_color

from recbole_music.evaluation.cold_start_evaluator import RATING_ERROR_METRICS
from recbole_music.trainer.cold_start_trainer import CrossDomainTrainer


def _fmt(values: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in values.items())


class HyperSearchTrainer(CrossDomainTrainer):
    def fit(
        self,
        train_data,
        valid_data=None,
        verbose=True,
        saved=True,
        show_progress=False,
        callback_fn=None,
    ):
        model, name = self.model, type(self.model).__name__
        if not valid_data:
            self.logger.info(
                set_color(f"{name} search skipped", "yellow")
                + f": no validation users (valid_ratio=0); YAML defaults used: {_fmt(model.hyper)}"
            )
        else:
            self._search(valid_data, name)
        if saved:
            self._save_checkpoint(0, verbose=verbose)
        return self.best_valid_score, self.best_valid_result

    def _search(self, valid_data, name: str) -> None:
        model = self.model
        on_ratings = self.valid_metric.split("@")[0].lower() in RATING_ERROR_METRICS
        candidates = model.search_candidates(on_ratings)
        searched = model.searched_grid(on_ratings)
        grid = "; ".join(f"{k}: {v}" for k, v in searched.items()) or "defaults only"
        kept = sorted(set(model.search_grid) - set(searched))
        note = f"; {', '.join(kept)} moves no {self.valid_metric}: kept at default" if kept else ""
        self.logger.info(
            set_color(f"{name} search", "green")
            + f": {len(candidates)} candidate(s) on the validation users by {self.valid_metric} "
            f"(grid {grid}{note})"
        )
        best = None
        model.cache_neighbourhood_scores(True)
        try:
            for candidate in candidates:
                model.set_hyper(candidate)
                # the mixin's evaluate: no fallback line per candidate, one for the chosen below
                result = CrossDomainTrainer.evaluate(self, valid_data, load_best_model=False)
                score = calculate_valid_score(result, self.valid_metric)
                self.logger.info(f"  {_fmt(candidate)}: {self.valid_metric}={score:.4f}")
                better = best is None or (
                    score > best[0] if self.valid_metric_bigger else score < best[0]
                )
                if better:
                    best = (score, candidate, result, model.fallback_users, model.scored_users)
                model.reset_fallback_count()
        finally:
            model.cache_neighbourhood_scores(False)
        score, chosen, result, fallback, scored = best
        model.set_hyper(chosen)
        self.best_valid_score, self.best_valid_result = score, result
        self.logger.info(
            set_color(f"{name} chosen on validation users", "green")
            + f": {_fmt(chosen)} ({self.valid_metric}={score:.4f})"
        )
        self._log_fallback("validation", fallback, scored)

    def _log_fallback(self, part: str, fallback: int, scored: int) -> None:
        if scored:
            self.logger.info(
                f"{type(self.model).__name__}: {fallback} of {scored} {part} users have no "
                f"auxiliary item co-occurring with a target item: ranked by popularity"
            )

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        self.model.reset_fallback_count()
        result = super().evaluate(eval_data, load_best_model, model_file, show_progress)
        if result is not None:
            self._log_fallback("evaluated", self.model.fallback_users, self.model.scored_users)
        return result

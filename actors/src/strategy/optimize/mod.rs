//! Parameter optimisation: the same backtest over every point of a parameter grid, on all cores.
//!
//! [`validate_spec`] checks a client's spec up front (strategy, parameter names, types, ranges, grid
//! size) so an HTTP handler can answer 400 before starting a job. [`run_optimization`] then runs the
//! backtests on rayon's global pool (one worker per core, shared by concurrent jobs, so the total is
//! bounded) and **blocks the calling thread**: call it from `std::thread::spawn` or
//! `tokio::task::spawn_blocking`, never on an async executor thread.

mod grid;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::Bar;
use crate::strategy::backtest::{run_metrics, BacktestConfig, BacktestError, Direction, Metric, Metrics};
use crate::strategy::params::{BuildError, ParamError};
use crate::strategy::strategies::registry;

pub use grid::{Grid, ParamValues};

/// Grids larger than this are refused: at ~100 ms per 1M-bar backtest, 100,000 points is hours.
pub const MAX_COMBINATIONS: usize = 100_000;
/// Results returned when the spec does not say.
pub const DEFAULT_TOP: usize = 100;

/// What a client sends to `POST /api/optimize` (besides the bars' symbol and time range).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizeSpec {
    pub strategy: String,
    /// Values to try per parameter; parameters left out stay at their default.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, ParamValues>,
    pub rank_by: Metric,
    /// Defaults to the metric's natural direction (drawdowns: min, everything else: max).
    #[serde(default)]
    pub direction: Option<Direction>,
    #[serde(default)]
    pub backtest: BacktestConfig,
    /// How many ranked results to return (default [`DEFAULT_TOP`]).
    #[serde(default)]
    pub top: Option<usize>,
}

/// A validated spec, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub grid: Grid,
    pub rank_by: Metric,
    pub direction: Direction,
    pub backtest: BacktestConfig,
    pub top: usize,
}

/// Why an optimisation was refused or stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimizeError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("parameter {name:?}: {reason}")]
    Range { name: String, reason: String },
    #[error("the grid has {count} combinations; the limit is {max}")]
    TooManyCombinations { count: u128, max: usize },
    #[error("no bars to optimise over")]
    NoBars,
    #[error(transparent)]
    Backtest(#[from] BacktestError),
    #[error("cancelled")]
    Cancelled,
}

impl From<ParamError> for OptimizeError {
    fn from(e: ParamError) -> Self {
        OptimizeError::Build(BuildError::Params(e))
    }
}

/// Progress of a running optimisation, readable from any thread while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }
    /// Grid points finished (evaluated or skipped).
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
    /// 0 to 100; 0 before the run has started.
    pub fn percent(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            0.0
        } else {
            self.done() as f64 * 100.0 / total as f64
        }
    }
}

/// One grid point's outcome, ranked (1 = best).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedResult {
    pub rank: usize,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The ranking metric's value (`null` when undefined; those rank last).
    pub score: Option<f64>,
    pub metrics: Metrics,
}

/// The ranked results and how the grid was covered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizeOutcome {
    pub rank_by: Metric,
    pub direction: Direction,
    /// Grid points in total, backtests run, and points skipped because their parameters contradict each
    /// other (e.g. `fast >= slow`).
    pub combinations: usize,
    pub evaluated: usize,
    pub skipped: usize,
    /// The best `top` results.
    pub results: Vec<RankedResult>,
}

/// Checks a spec without running anything.
pub fn validate_spec(spec: &OptimizeSpec) -> Result<Plan, OptimizeError> {
    let info = registry::find(&spec.strategy)?;
    let grid = Grid::new(info, &spec.params)?;
    spec.backtest.validate()?;
    Ok(Plan {
        grid,
        rank_by: spec.rank_by,
        direction: spec.direction.unwrap_or(spec.rank_by.default_direction()),
        backtest: spec.backtest,
        top: spec.top.unwrap_or(DEFAULT_TOP),
    })
}

/// Validates `spec` and backtests every grid point over `bars`, in parallel. See the module docs.
pub fn run_optimization(
    spec: &OptimizeSpec,
    bars: &[Bar],
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<OptimizeOutcome, OptimizeError> {
    let plan = validate_spec(spec)?;
    run_plan(&plan, bars, progress, cancel)
}

/// Runs an already validated plan.
pub fn run_plan(
    plan: &Plan,
    bars: &[Bar],
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<OptimizeOutcome, OptimizeError> {
    if !bars.iter().any(|b| b.closed) {
        return Err(OptimizeError::NoBars);
    }
    let total = plan.grid.len();
    progress.done.store(0, Ordering::Relaxed);
    progress.total.store(total, Ordering::Relaxed);
    // Each point is one task; rayon splits the index range adaptively, and a failed point (cancel,
    // bad bars) stops the whole collect early.
    let outcomes: Vec<Option<(usize, Metrics)>> = (0..total)
        .into_par_iter()
        .map(|index| {
            if cancel.load(Ordering::Relaxed) {
                return Err(OptimizeError::Cancelled);
            }
            let params = plan.grid.params(index);
            let result = match registry::build_from(plan.grid.strategy(), &params) {
                Ok(strategy) => Some((index, run_metrics(strategy, bars, &plan.backtest, cancel)?)),
                Err(ParamError::Constraint(_)) => None,
                Err(other) => return Err(other.into()),
            };
            progress.done.fetch_add(1, Ordering::Relaxed);
            Ok(result)
        })
        .collect::<Result<_, OptimizeError>>()
        .map_err(|e| match e {
            OptimizeError::Backtest(BacktestError::Cancelled) => OptimizeError::Cancelled,
            other => other,
        })?;
    let mut scored: Vec<(usize, Metrics, Option<f64>)> =
        outcomes.into_iter().flatten().map(|(i, m)| (i, m, plan.rank_by.value(&m).filter(|v| !v.is_nan()))).collect();
    let evaluated = scored.len();
    scored.sort_by(|a, b| rank_order(plan.direction, a.2, b.2).then(a.0.cmp(&b.0)));
    let results = scored
        .into_iter()
        .take(plan.top)
        .enumerate()
        .map(|(rank, (index, metrics, score))| RankedResult {
            rank: rank + 1,
            params: plan.grid.params(index).to_json(),
            score,
            metrics,
        })
        .collect();
    Ok(OptimizeOutcome {
        rank_by: plan.rank_by,
        direction: plan.direction,
        combinations: total,
        evaluated,
        skipped: total - evaluated,
        results,
    })
}

/// Best first; undefined scores last.
fn rank_order(direction: Direction, a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => match direction {
            Direction::Max => b.total_cmp(&a),
            Direction::Min => a.total_cmp(&b),
        },
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

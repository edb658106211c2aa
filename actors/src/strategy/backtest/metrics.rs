//! Backtest metrics, accumulated online (no per-bar allocation), and the metric names the optimizer
//! ranks by. Definitions are in `docs/STRATEGIES.md` ("Metrics").

use serde::{Deserialize, Serialize};

use crate::model::Interval;

const YEAR_MS: f64 = 365.0 * 86_400_000.0;

/// Bars per year for an interval: crypto trades around the clock, so a year is 365 days of bars
/// (525,600 one-minute bars, 8,760 hourly bars, 365 daily bars, 52.14 weekly bars).
pub fn periods_per_year(interval: Interval) -> f64 {
    YEAR_MS / interval.millis() as f64
}

/// The summary of one backtest. Ratios that are undefined (no trades, no variance, no losses) are
/// `None`, serialised as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub initial_equity: f64,
    pub final_equity: f64,
    pub net_pnl: f64,
    pub return_pct: f64,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub max_drawdown: f64,
    pub max_drawdown_pct: f64,
    pub win_rate_pct: Option<f64>,
    pub profit_factor: Option<f64>,
    pub trades: u64,
    pub exposure_pct: f64,
    pub bars: u64,
}

/// A metric to rank optimisation results by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    NetPnl,
    ReturnPct,
    Sharpe,
    Sortino,
    MaxDrawdown,
    MaxDrawdownPct,
    WinRatePct,
    ProfitFactor,
    Trades,
    ExposurePct,
}

/// Whether larger or smaller values of a metric rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[serde(alias = "maximize", alias = "desc")]
    Max,
    #[serde(alias = "minimize", alias = "asc")]
    Min,
}

impl Metric {
    /// The metric's value; `None` when undefined (it then ranks last).
    pub fn value(self, m: &Metrics) -> Option<f64> {
        match self {
            Metric::NetPnl => Some(m.net_pnl),
            Metric::ReturnPct => Some(m.return_pct),
            Metric::Sharpe => m.sharpe,
            Metric::Sortino => m.sortino,
            Metric::MaxDrawdown => Some(m.max_drawdown),
            Metric::MaxDrawdownPct => Some(m.max_drawdown_pct),
            Metric::WinRatePct => m.win_rate_pct,
            Metric::ProfitFactor => m.profit_factor,
            Metric::Trades => Some(m.trades as f64),
            Metric::ExposurePct => Some(m.exposure_pct),
        }
    }

    /// Drawdowns rank smallest first, everything else largest first.
    pub fn default_direction(self) -> Direction {
        match self {
            Metric::MaxDrawdown | Metric::MaxDrawdownPct => Direction::Min,
            _ => Direction::Max,
        }
    }
}

/// Online accumulator behind [`Metrics`].
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    initial: f64,
    prev_equity: f64,
    // Welford over per-bar simple returns.
    n: u64,
    mean: f64,
    m2: f64,
    downside_sq: f64,
    peak: f64,
    max_dd: f64,
    max_dd_pct: f64,
    bars_in_market: u64,
    trades: u64,
    wins: u64,
    gross_profit: f64,
    gross_loss: f64,
}

impl Stats {
    pub fn new(initial: f64) -> Self {
        Stats {
            initial,
            prev_equity: initial,
            n: 0,
            mean: 0.0,
            m2: 0.0,
            downside_sq: 0.0,
            peak: initial,
            max_dd: 0.0,
            max_dd_pct: 0.0,
            bars_in_market: 0,
            trades: 0,
            wins: 0,
            gross_profit: 0.0,
            gross_loss: 0.0,
        }
    }

    /// One bar's closing equity, and whether a position was held during the bar.
    #[inline]
    pub fn bar(&mut self, equity: f64, in_market: bool) {
        let r = equity / self.prev_equity - 1.0;
        self.prev_equity = equity;
        self.n += 1;
        let delta = r - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (r - self.mean);
        if r < 0.0 {
            self.downside_sq += r * r;
        }
        if equity > self.peak {
            self.peak = equity;
        }
        let dd = self.peak - equity;
        if dd > self.max_dd {
            self.max_dd = dd;
        }
        let dd_pct = dd / self.peak * 100.0;
        if dd_pct > self.max_dd_pct {
            self.max_dd_pct = dd_pct;
        }
        self.bars_in_market += u64::from(in_market);
    }

    /// One closed round trip, net of fees.
    #[inline]
    pub fn trade(&mut self, pnl: f64) {
        self.trades += 1;
        if pnl > 0.0 {
            self.wins += 1;
            self.gross_profit += pnl;
        } else {
            self.gross_loss -= pnl;
        }
    }

    pub fn finish(&self, interval: Option<Interval>) -> Metrics {
        let final_equity = self.prev_equity;
        let annual = interval.map_or(0.0, |iv| periods_per_year(iv).sqrt());
        let sd = if self.n >= 2 { (self.m2 / (self.n - 1) as f64).sqrt() } else { 0.0 };
        let downside = if self.n > 0 { (self.downside_sq / self.n as f64).sqrt() } else { 0.0 };
        let ratio = |den: f64| (den > 0.0 && den.is_finite()).then(|| self.mean / den * annual);
        let net_pnl = final_equity - self.initial;
        Metrics {
            initial_equity: self.initial,
            final_equity,
            net_pnl,
            return_pct: net_pnl / self.initial * 100.0,
            sharpe: if self.n >= 2 { ratio(sd) } else { None },
            sortino: ratio(downside),
            max_drawdown: self.max_dd,
            max_drawdown_pct: self.max_dd_pct,
            win_rate_pct: (self.trades > 0).then(|| self.wins as f64 / self.trades as f64 * 100.0),
            profit_factor: (self.gross_loss > 0.0).then(|| self.gross_profit / self.gross_loss),
            trades: self.trades,
            exposure_pct: if self.n > 0 { self.bars_in_market as f64 / self.n as f64 * 100.0 } else { 0.0 },
            bars: self.n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_per_year_use_a_365_day_year() {
        assert_eq!(periods_per_year(Interval::M1), 525_600.0);
        assert_eq!(periods_per_year(Interval::H1), 8_760.0);
        assert_eq!(periods_per_year(Interval::D1), 365.0);
    }

    #[test]
    fn sharpe_and_sortino_by_hand() {
        // Equity 100 → 110 → 99 → 108.9: returns +10%, -10%, +10%.
        // mean = 0.1/3; sample sd = sqrt(((0.2/3)²·2 + (0.4/3)²)/2) = sqrt(0.04/3) ≈ 0.11547;
        // downside deviation = sqrt(0.01/3) ≈ 0.057735. Daily bars: × √365.
        let mut s = Stats::new(100.0);
        for e in [110.0, 99.0, 108.9] {
            s.bar(e, true);
        }
        let m = s.finish(Some(Interval::D1));
        let mean = 0.1 / 3.0;
        let sharpe = mean / (0.04f64 / 3.0).sqrt() * 365f64.sqrt();
        let sortino = mean / (0.01f64 / 3.0).sqrt() * 365f64.sqrt();
        assert!((m.sharpe.unwrap() - sharpe).abs() < 1e-9, "{:?}", m.sharpe);
        assert!((m.sortino.unwrap() - sortino).abs() < 1e-9, "{:?}", m.sortino);
        // Peak 110, trough 99: drawdown 11, 10 %.
        assert!((m.max_drawdown - 11.0).abs() < 1e-9 && (m.max_drawdown_pct - 10.0).abs() < 1e-9);
    }

    #[test]
    fn flat_equity_has_undefined_ratios() {
        let mut s = Stats::new(100.0);
        s.bar(100.0, false);
        s.bar(100.0, false);
        let m = s.finish(Some(Interval::H1));
        assert_eq!((m.sharpe, m.sortino, m.win_rate_pct, m.profit_factor), (None, None, None, None));
        assert_eq!((m.net_pnl, m.exposure_pct, m.max_drawdown), (0.0, 0.0, 0.0));
    }
}

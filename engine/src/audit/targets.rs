//! Comparing a recounted stage with its plan: the recipe's share of every category on the stage's
//! budget basis, each source's share (category share x its weight within the category), the
//! deviation in percentage points, and passes over each source.
//!
//! Only categories gate the audit: the recipe promises category shares; a source's share within
//! its category follows its weight or size and is reported for diagnosis. A category the mix does
//! not name but the shards hold has target 0, so stray data fails the gate too.

use super::{AuditProblem, MixLine, Shares, StageAudit};
use crate::plan::StagePlan;

/// Fills in targets, deviations and passes; returns a problem per category beyond `tolerance_pp`.
pub fn apply(stage: &mut StageAudit, plan: &StagePlan, tolerance_pp: f64) -> Vec<AuditProblem> {
    let basis = plan.basis;
    stage.basis = Some(basis);
    stage.budget = Some(plan.budget);
    for planned in &plan.categories {
        if !stage.categories.iter().any(|c| c.name == planned.name) {
            stage.categories.push(MixLine {
                name: planned.name.clone(),
                counts: Default::default(),
                share: Shares::default(),
                target_share: None,
                deviation_pp: None,
                within_tolerance: None,
            });
        }
    }
    stage.categories.sort_by(|a, b| a.name.cmp(&b.name));
    let mut problems = Vec::new();
    for line in &mut stage.categories {
        let target = plan
            .categories
            .iter()
            .find(|c| c.name == line.name)
            .map_or(0.0, |c| c.target_share);
        let realized = line.share.on(basis);
        let deviation_pp = 100.0 * (realized - target);
        // Compared at 1e-9 pp so a deviation printed as the tolerance is not a failure by rounding.
        let within = deviation_pp.abs() <= tolerance_pp + 1e-9;
        line.target_share = Some(target);
        line.deviation_pp = Some(deviation_pp);
        line.within_tolerance = Some(within);
        if !within {
            problems.push(AuditProblem::MixDeviation {
                stage: stage.name.clone(),
                category: line.name.clone(),
                basis,
                target_share: target,
                realized_share: realized,
                deviation_pp,
                tolerance_pp,
            });
        }
    }
    for line in &mut stage.sources {
        let drawn = plan
            .categories
            .iter()
            .flat_map(|c| c.sources.iter().map(move |d| (c, d)))
            .find(|(_, d)| d.source == line.name);
        let target = drawn.map_or(0.0, |(c, d)| c.target_share * d.weight_share);
        line.target_share = Some(target);
        line.deviation_pp = Some(100.0 * (line.share.on(basis) - target));
        if let Some((_, d)) = drawn {
            line.available = Some(d.available);
            line.passes = Some(if d.available == 0 {
                0.0
            } else {
                line.draws as f64 / d.available as f64
            });
            line.planned_passes = Some(d.passes);
        }
    }
    problems
}

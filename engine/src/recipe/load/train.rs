//! A stage's `train` section: hints for the trainer (learning rate, schedule, batch size, ...) that
//! mixtape validates and records in the manifest but does not act on.

use crate::diag::Diagnostics;
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::yaml::{Node, Value};

const TRAIN_KEYS: &[&str] = &[
    "trainable",
    "lr",
    "lr_scale",
    "warmup",
    "schedule",
    "batch_size",
    "grad_accum",
    "weight_decay",
    "clip_grad",
];

pub(super) fn train_hints(node: &Node, diags: &mut Diagnostics) -> Option<TrainHints> {
    let entries = fields::map(node, "`train`", TRAIN_KEYS, diags)?;
    let mut hints = TrainHints::default();
    let mut ok = true;
    for (key, value) in entries {
        let what = format!("train `{}`", key.name);
        let good = match key.name.as_str() {
            "trainable" => fields::strings(value, &what, diags).and_then(|names| {
                let mut modules = Vec::new();
                for (name, span) in names {
                    let node = Node {
                        value: Value::Str(name),
                        span,
                    };
                    modules.push(
                        match fields::choice(&node, "module", &Module::NAMES, diags)? {
                            "vision" => Module::Vision,
                            "projector" => Module::Projector,
                            _ => Module::Llm,
                        },
                    );
                }
                modules.sort();
                modules.dedup();
                hints.trainable = modules;
                Some(())
            }),
            "lr" => {
                fields::positive_at_most(value, &what, bounds::MAX_LR, diags).map(|v| hints.lr = v)
            }
            "lr_scale" => {
                fields::map(value, "`lr_scale`", &Module::NAMES, diags).and_then(|entries| {
                    for (k, v) in entries {
                        let scale = fields::positive_at_most(
                            v,
                            &format!("lr_scale `{}`", k.name),
                            bounds::MAX_LR_SCALE,
                            diags,
                        )?;
                        hints.lr_scale.insert(k.name.clone(), scale);
                    }
                    Some(())
                })
            }
            "warmup" => fields::number_in(value, &what, 0.0, 1.0, diags).map(|v| hints.warmup = v),
            "schedule" => {
                fields::choice(value, "schedule", &["cosine", "linear", "constant"], diags).map(
                    |s| {
                        hints.schedule = match s {
                            "cosine" => LrSchedule::Cosine,
                            "linear" => LrSchedule::Linear,
                            _ => LrSchedule::Constant,
                        }
                    },
                )
            }
            "batch_size" => fields::integer_in(value, &what, 1, bounds::MAX_BATCH, diags)
                .map(|v| hints.batch_size = v as u32),
            "grad_accum" => fields::integer_in(value, &what, 1, bounds::MAX_BATCH, diags)
                .map(|v| hints.grad_accum = v as u32),
            "weight_decay" => {
                fields::number_in(value, &what, 0.0, 10.0, diags).map(|v| hints.weight_decay = v)
            }
            "clip_grad" => {
                fields::positive_at_most(value, &what, 1e6, diags).map(|v| hints.clip_grad = v)
            }
            _ => Some(()),
        };
        ok &= good.is_some();
    }
    ok.then_some(hints)
}

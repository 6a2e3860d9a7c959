//! Checkpoint averaging ("model soup"): MindVL averages checkpoints of the same stage trained at
//! different sequence lengths. Uniform or weighted: weights are given per input and normalised to
//! sum to 1, so `--weights 1,3` means 0.25 / 0.75.
//!
//! Only the weights (`model.*`) are averaged, in f64 and rounded once to f32; the result carries no
//! optimizer state or data cursor (it starts nothing, it is evaluated or fine-tuned afresh). Every
//! input must hold the same tensor names with the same shapes and the same model configuration:
//! anything else is an error naming the first difference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use crate::checkpoint::{
    CHECKPOINT_FORMAT, Checkpoint, CheckpointError, CheckpointMeta, MODEL_PREFIX,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AverageError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("averaging needs at least two checkpoints, got {0}")]
    TooFew(usize),
    #[error("{given} weights for {inputs} checkpoints: give one weight per checkpoint")]
    WeightCount { given: usize, inputs: usize },
    #[error("weight {value} is not a positive finite number (weights are relative shares)")]
    BadWeight { value: f64 },
    #[error("{}: `{name}` has shape {found:?}, {} has {expected:?}: only checkpoints of the same model can be averaged", path.display(), first.display())]
    Shape {
        path: PathBuf,
        first: PathBuf,
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("{}: {detail} ({} is the reference)", path.display(), first.display())]
    Mismatch {
        path: PathBuf,
        first: PathBuf,
        detail: String,
    },
}

/// Averages `inputs` with `weights` (uniform when `None`) into a checkpoint.
pub fn average(inputs: &[PathBuf], weights: Option<&[f64]>) -> Result<Checkpoint, AverageError> {
    if inputs.len() < 2 {
        return Err(AverageError::TooFew(inputs.len()));
    }
    let raw: Vec<f64> = match weights {
        Some(w) if w.len() != inputs.len() => {
            return Err(AverageError::WeightCount {
                given: w.len(),
                inputs: inputs.len(),
            });
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; inputs.len()],
    };
    if let Some(&value) = raw.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(AverageError::BadWeight { value });
    }
    let total: f64 = raw.iter().sum();
    let shares: Vec<f64> = raw.iter().map(|w| w / total).collect();

    let first = Checkpoint::load(&inputs[0])?;
    let reference: BTreeMap<String, Vec<i64>> = model_tensors(&first)
        .map(|(n, t)| (n.clone(), t.size()))
        .collect();
    let mut sums: BTreeMap<String, Tensor> = model_tensors(&first)
        .map(|(n, t)| (n.clone(), t.to_kind(Kind::Double) * shares[0]))
        .collect();
    for (path, &share) in inputs.iter().zip(&shares).skip(1) {
        let other = Checkpoint::load(path)?;
        check_compatible(&inputs[0], &first.meta, &reference, path, &other)?;
        for (name, t) in model_tensors(&other) {
            let sum = sums.get_mut(name).expect("names checked");
            *sum = &*sum + t.to_kind(Kind::Double) * share;
        }
    }
    let meta = CheckpointMeta {
        format: CHECKPOINT_FORMAT,
        model: first.meta.model.clone(),
        seed: first.meta.seed,
        stage_index: first.meta.stage_index,
        stage: first.meta.stage.clone(),
        step: 0,
        global_step: 0,
        reader: None,
        averaged_from: inputs
            .iter()
            .zip(&shares)
            .map(|(p, &s)| (p.display().to_string(), s))
            .collect(),
    };
    let tensors = sums
        .into_iter()
        .map(|(n, t)| (n, t.to_kind(Kind::Float)))
        .collect();
    Ok(Checkpoint { meta, tensors })
}

fn model_tensors(c: &Checkpoint) -> impl Iterator<Item = &(String, Tensor)> {
    c.tensors
        .iter()
        .filter(|(n, _)| n.starts_with(MODEL_PREFIX))
}

fn check_compatible(
    first_path: &Path,
    first: &CheckpointMeta,
    reference: &BTreeMap<String, Vec<i64>>,
    path: &Path,
    other: &Checkpoint,
) -> Result<(), AverageError> {
    let mismatch = |detail: String| AverageError::Mismatch {
        path: path.to_path_buf(),
        first: first_path.to_path_buf(),
        detail,
    };
    if other.meta.model != first.model {
        return Err(mismatch("its model configuration differs".into()));
    }
    let names: BTreeMap<&String, &Tensor> = model_tensors(other).map(|(n, t)| (n, t)).collect();
    for (name, shape) in reference {
        let t = names
            .get(name)
            .ok_or_else(|| mismatch(format!("it has no tensor `{name}`")))?;
        if &t.size() != shape {
            return Err(AverageError::Shape {
                path: path.to_path_buf(),
                first: first_path.to_path_buf(),
                name: name.clone(),
                expected: shape.clone(),
                found: t.size(),
            });
        }
    }
    if let Some(extra) = names.keys().find(|n| !reference.contains_key(**n)) {
        return Err(mismatch(format!(
            "it has a tensor `{extra}` the reference lacks"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn write(dir: &Path, name: &str, tensors: &[(&str, Vec<f32>, Vec<i64>)]) -> PathBuf {
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT,
            model: ModelConfig {
                vocab_size: 8,
                ..ModelConfig::default()
            },
            seed: 0,
            stage_index: 1,
            stage: "sft".into(),
            step: 3,
            global_step: 3,
            reader: None,
            averaged_from: vec![],
        };
        let tensors = tensors
            .iter()
            .map(|(n, v, shape)| {
                (
                    format!("{MODEL_PREFIX}{n}"),
                    Tensor::from_slice(v).view(shape.as_slice()),
                )
            })
            .chain(std::iter::once((
                "optim.m.a".to_string(),
                Tensor::from_slice(&[9.0f32]),
            )))
            .collect();
        let path = dir.join(name);
        Checkpoint { meta, tensors }.save(&path).unwrap();
        path
    }

    fn values(c: &Checkpoint, name: &str) -> Vec<f32> {
        let t = &c.tensors.iter().find(|(n, _)| n == name).unwrap().1;
        Vec::<f32>::try_from(t.view(-1)).unwrap()
    }

    #[test]
    fn uniform_and_weighted_means() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.safetensors",
            &[
                ("w", vec![1.0, 2.0, 3.0, 4.0], vec![2, 2]),
                ("b", vec![0.5], vec![1]),
            ],
        );
        let b = write(
            dir.path(),
            "b.safetensors",
            &[
                ("w", vec![3.0, 6.0, -1.0, 0.0], vec![2, 2]),
                ("b", vec![1.5], vec![1]),
            ],
        );
        let uniform = average(&[a.clone(), b.clone()], None).unwrap();
        assert_eq!(values(&uniform, "model.w"), [2.0, 4.0, 1.0, 2.0]);
        assert_eq!(values(&uniform, "model.b"), [1.0]);
        // 1:3 means 0.25 / 0.75.
        let weighted = average(&[a.clone(), b.clone()], Some(&[1.0, 3.0])).unwrap();
        assert_eq!(values(&weighted, "model.w"), [2.5, 5.0, 0.0, 1.0]);
        assert_eq!(
            weighted
                .meta
                .averaged_from
                .iter()
                .map(|x| x.1)
                .collect::<Vec<_>>(),
            [0.25, 0.75]
        );
        // Optimizer state is not carried into a soup.
        assert!(
            weighted
                .tensors
                .iter()
                .all(|(n, _)| n.starts_with(MODEL_PREFIX))
        );
        // Round trip through a file keeps the numbers.
        let out = dir.path().join("soup.safetensors");
        weighted.save(&out).unwrap();
        assert_eq!(
            values(&Checkpoint::load(&out).unwrap(), "model.w"),
            [2.5, 5.0, 0.0, 1.0]
        );
        // Three inputs.
        let c = write(
            dir.path(),
            "c.safetensors",
            &[
                ("w", vec![2.0, 1.0, 4.0, 8.0], vec![2, 2]),
                ("b", vec![1.0], vec![1]),
            ],
        );
        let three = average(&[a, b, c], None).unwrap();
        assert_eq!(values(&three, "model.w"), [2.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn shapes_and_names_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.safetensors",
            &[("w", vec![1.0, 2.0, 3.0, 4.0], vec![2, 2])],
        );
        let wide = write(
            dir.path(),
            "wide.safetensors",
            &[("w", vec![1.0, 2.0, 3.0, 4.0], vec![1, 4])],
        );
        let err = average(&[a.clone(), wide], None).unwrap_err();
        assert!(
            matches!(&err, AverageError::Shape { name, .. } if name == "model.w"),
            "{err}"
        );
        assert!(err.to_string().contains("wide.safetensors"), "{err}");
        let other = write(
            dir.path(),
            "other.safetensors",
            &[("v", vec![1.0, 2.0, 3.0, 4.0], vec![2, 2])],
        );
        let err = average(&[a.clone(), other], None).unwrap_err();
        assert!(err.to_string().contains("no tensor `model.w`"), "{err}");
        assert!(matches!(
            average(std::slice::from_ref(&a), None),
            Err(AverageError::TooFew(1))
        ));
        let err = average(&[a.clone(), a.clone()], Some(&[1.0])).unwrap_err();
        assert!(matches!(
            err,
            AverageError::WeightCount {
                given: 1,
                inputs: 2
            }
        ));
        let err = average(&[a.clone(), a], Some(&[1.0, -2.0])).unwrap_err();
        assert!(matches!(err, AverageError::BadWeight { .. }));
    }
}

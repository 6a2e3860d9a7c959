//! `mixtape-train`: argument resolution and printing only; the work lives in the library.
//!
//! Exit status: 0 success; 1 the command ran and found a problem (training diverged to a non-finite
//! loss); 2 it could not run (bad arguments, unreadable recipe, shards or checkpoints, a device that is
//! not available).

mod cli;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use mixtape_engine::recipe::Recipe;
use mixtape_trainer_bridge::{average, checkpoint, data, device::DeviceSpec, eval, model, train};

use cli::{Cli, Command};

/// The shard reader allocates and frees megabyte-sized column buffers per row group; mimalloc
/// reuses them where glibc's malloc returns them to the kernel (libtorch keeps its own allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => run_train(args),
        Command::Average(args) => run_average(args),
        Command::ResolutionSearch(args) => run_resolution(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  Caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

fn load_recipe(path: &Path) -> Result<Recipe> {
    let loaded = mixtape_engine::recipe::load(path);
    match loaded.recipe {
        Some(recipe) => Ok(recipe),
        None => {
            for d in loaded.diagnostics.sorted() {
                eprintln!("{}", d.render(&loaded.sources));
            }
            bail!(
                "{} is not a valid recipe (run `mixtape check {}`)",
                path.display(),
                path.display()
            )
        }
    }
}

fn precision(bf16: bool) -> model::Precision {
    if bf16 {
        model::Precision::Bf16
    } else {
        model::Precision::F32
    }
}

fn run_train(args: cli::TrainArgs) -> Result<ExitCode> {
    let cli::TrainArgs {
        recipe,
        data,
        out,
        common:
            cli::CommonArgs {
                device,
                npu_lib,
                bf16,
                holdout_rows,
            },
        recompute,
        seed,
        lr_multiplier,
        model_config,
        max_steps,
        save_every,
        eval_every,
        stop_after,
        resume,
        json,
    } = args;
    if !(lr_multiplier.is_finite() && lr_multiplier > 0.0) {
        bail!("--lr-multiplier must be a positive number, got {lr_multiplier}");
    }
    let model = match model_config {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a model configuration", path.display()))?
        }
        None => model::ModelConfig::default(),
    };
    let options = train::TrainOptions {
        recipe: load_recipe(&recipe)?,
        data,
        out,
        device: device.parse::<DeviceSpec>()?,
        npu_lib,
        precision: precision(bf16),
        recompute,
        seed,
        model,
        holdout_rows,
        lr_multiplier,
        max_steps_per_stage: max_steps,
        save_every,
        eval_every,
        stop_after,
        resume,
    };
    let summary = train::train(&options)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let status = if summary.finished {
            "finished"
        } else {
            "stopped"
        };
        println!(
            "{status} after {} steps ({} parameters, {:.0} tokens/s); checkpoint {}",
            summary.global_steps,
            summary.parameters,
            summary.tokens_per_s,
            summary.checkpoint.display()
        );
        if let (Some(a), Some(b)) = (summary.initial_eval, summary.final_eval) {
            println!("held-back loss {a:.4} -> {b:.4}");
        }
    }
    let diverged = [summary.initial_eval, summary.final_eval]
        .into_iter()
        .flatten()
        .any(|l| !l.is_finite());
    Ok(if diverged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_average(args: cli::AverageArgs) -> Result<ExitCode> {
    let cli::AverageArgs {
        checkpoints,
        weights,
        out,
    } = args;
    let averaged = average::average(&checkpoints, weights.as_deref())?;
    averaged.save(&out)?;
    let shares: Vec<String> = averaged
        .meta
        .averaged_from
        .iter()
        .map(|(p, s)| format!("{p} x {s:.4}"))
        .collect();
    println!("wrote {} = {}", out.display(), shares.join(" + "));
    Ok(ExitCode::SUCCESS)
}

fn run_resolution(args: cli::ResolutionArgs) -> Result<ExitCode> {
    let cli::ResolutionArgs {
        checkpoint,
        recipe,
        data,
        stage,
        max_pixels,
        common,
        json,
    } = args;
    let cli::CommonArgs {
        device,
        npu_lib,
        bf16,
        holdout_rows,
    } = common;
    let recipe = load_recipe(&recipe)?;
    let stage = match &stage {
        Some(name) => recipe
            .stages
            .iter()
            .find(|s| &s.name == name)
            .with_context(|| {
                let names: Vec<&str> = recipe.stages.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "the recipe has no stage `{name}` (it has {})",
                    names.join(", ")
                )
            })?,
        None => recipe.stages.last().context("the recipe has no stages")?,
    };
    let placement = device
        .parse::<DeviceSpec>()?
        .placement(npu_lib.as_deref())?;
    let ckpt = checkpoint::Checkpoint::load(&checkpoint)?;
    let model = model::Mllm::try_new(ckpt.meta.model.clone(), &placement, ckpt.meta.seed)?;
    train::load_weights(&model, &ckpt, &placement)
        .with_context(|| format!("loading {}", checkpoint.display()))?;
    let (_, image_pad) = train::tokenizer_ids(&recipe)?;
    let holdout = data::Holdout::read(&data.join(&stage.name), holdout_rows)?;
    let p = &stage.image;
    let policy = mixtape_engine::image::ResizePolicy {
        patch_size: p.patch_size,
        merge_size: p.merge_size,
        min_pixels: p.min_pixels,
        max_pixels: p.max_pixels,
        max_aspect_ratio: p.max_aspect_ratio,
    };
    let search = eval::resolution_search(
        &model,
        &holdout.rows,
        &policy,
        &max_pixels,
        image_pad,
        precision(bf16),
        &placement,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&search)?);
    } else {
        println!(
            "stage {} ({} held-back rows; trained at max_pixels {})",
            stage.name,
            holdout.rows.len(),
            p.max_pixels
        );
        println!(
            "{:>12}  {:>8}  {:>12}",
            "max_pixels", "loss", "image tokens"
        );
        for (i, r) in search.results.iter().enumerate() {
            let mark = if i == search.best { "  <- best" } else { "" };
            println!(
                "{:>12}  {:>8.4}  {:>12}{mark}",
                r.max_pixels, r.loss, r.image_tokens
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

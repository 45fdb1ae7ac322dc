//! `vggfeat info`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;

/// Describe checkpoints.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat info vgg16.safetensors\n  vggfeat info --json runs/a8/model.safetensors vgg19-dcbb9e9d.pth"
)]
pub struct InfoArgs {
    /// Checkpoint file(s): safetensors or PyTorch .pth, torchvision or timm names.
    #[arg(required = true)]
    pub weights: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints each checkpoint's description.
pub fn run(a: InfoArgs) -> Result<u8> {
    for (i, p) in a.weights.iter().enumerate() {
        let info = vggfeat::info(p)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&info)?);
        } else {
            if i > 0 {
                println!();
            }
            println!("{info}");
        }
    }
    Ok(EXIT_OK)
}

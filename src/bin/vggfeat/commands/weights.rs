//! `vggfeat weights`.

use anyhow::Result;
use clap::Subcommand;

use crate::EXIT_OK;
use crate::choice::Choice;
use vggfeat::hub::{PRETRAINED, Pretrained, PretrainedName};

/// `vggfeat weights ...`.
#[derive(Subcommand, Debug)]
pub enum WeightsAction {
    /// Download timm's vgg16.tv_in1k / vgg19.tv_in1k (ImageNet) and print the local path.
    #[command(
        after_help = "Example:\n  vggfeat weights fetch vgg16   # prints the cached file's path; offline: where to get it by hand"
    )]
    Fetch {
        /// The network.
        #[arg(value_parser = Choice::<PretrainedName>::new())]
        name: PretrainedName,
    },
    /// List the networks `fetch` knows, with their download addresses.
    #[command(after_help = "Example:\n  vggfeat weights list")]
    List,
}

/// Fetches or lists.
pub fn run(a: WeightsAction) -> Result<u8> {
    match a {
        WeightsAction::Fetch { name } => println!("{}", Pretrained::of(name).fetch()?.display()),
        WeightsAction::List => {
            for p in PRETRAINED {
                println!(
                    "{:<6} {}  (torchvision: {})",
                    p.name,
                    p.url(),
                    p.torchvision_url
                );
            }
        }
    }
    Ok(EXIT_OK)
}

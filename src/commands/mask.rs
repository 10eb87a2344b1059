//! `bintrail mask`: the stored form of a masked value, for lookups by value.

use bintrail::policy::{Policy, PolicyError};

use super::Failure;
use crate::cli::MaskCmd;

/// Prints `hmac:<hex>` of the value under the mask key.
pub fn run(cmd: MaskCmd) -> Result<(), Failure> {
    let policy = Policy::key_only(cmd.key_args()).map_err(|e| match e {
        PolicyError::NoKey => Failure::usage(
            "bintrail mask needs the stream's mask key: --mask-key-file FILE or BINTRAIL_MASK_KEY",
        ),
        e => Failure::usage(e),
    })?;
    let stored = policy
        .mask_text(&cmd.value)
        .expect("key_only refuses a policy without a key");
    println!("{stored}");
    Ok(())
}

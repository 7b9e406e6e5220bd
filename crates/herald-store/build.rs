//! `sqlx::migrate!` embeds the files of `migrations/` when the crate compiles, and cargo does not
//! know that: a migration added without a change to the Rust sources would leave a build
//! without it (`herald migrate` would then apply one migration fewer than the tree has). This
//! tells cargo to rebuild whenever anything under `migrations/` changes.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

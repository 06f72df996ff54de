//! The XDP object embedded at build time, if `cargo xtask build-ebpf` had
//! produced it (see build.rs).

use std::path::Path;

/// Bytes of the embedded object; 8-byte aligned as the ELF parser wants.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static EMBEDDED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/vrrp-ebpf.o")));

/// Why there is no object to load.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The binary was built before the eBPF object existed.
    #[error(
        "this vrrp-agent binary was built without its XDP program: run `cargo xtask build` \
         (which builds the eBPF object first), or pass --ebpf-object PATH"
    )]
    NotEmbedded,
    /// `--ebpf-object` names a file that cannot be read.
    #[error("cannot read XDP object {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The object to load: the file at `path` if given, else the embedded one.
pub fn load_bytes(path: Option<&Path>) -> Result<std::borrow::Cow<'static, [u8]>, ObjectError> {
    match path {
        Some(p) => std::fs::read(p)
            .map(Into::into)
            .map_err(|source| ObjectError::Read { path: p.display().to_string(), source }),
        None if cfg!(vrrp_ebpf_embedded) && !EMBEDDED.0.is_empty() => Ok(EMBEDDED.0.into()),
        None => Err(ObjectError::NotEmbedded),
    }
}

/// Whether this binary carries the XDP object.
pub fn embedded() -> bool {
    cfg!(vrrp_ebpf_embedded) && !EMBEDDED.0.is_empty()
}

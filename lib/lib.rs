//! The shared crate behind every onboarding function.
//!
//! Each file under `api/` is a Vercel function that mounts one router from
//! [`routes`] and runs it; `bin/dev.rs` mounts all of them on one port. All
//! logic that can be tested without a socket lives here, in layers that
//! import only downwards (README: "Layers of `lib/`"; `scripts/check-layers`):
//! [`settings`] → [`breaker`], [`monitoring`] → [`auth`] → [`db`] →
//! [`cache`], [`flags`] → [`ai`], [`outbound`] → [`outbox`] → [`wizard`] (the
//! domain) → [`config`] →
//! [`state`] → [`http`] → [`routes`] → [`openapi`].

pub mod ai;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod db;
pub mod flags;
pub mod http;
pub mod monitoring;
pub mod openapi;
pub mod outbound;
pub mod outbox;
pub mod routes;
pub mod settings;
pub mod state;
pub mod wizard;

pub use http::error::{ApiError, Result};
pub use state::AppState;

use libmimalloc_sys as mi;

/// mimalloc instead of glibc's malloc, for every binary of the crate: malloc,
/// free and glibc's consolidation of freed chunks were about a seventh of a
/// status read's samples, and when the allocator was chosen a cache miss cost
/// the function 82 µs of CPU instead of 98 µs, at more resident memory (31.5
/// MB instead of 19.8 MB for the largest function after 10,000 requests).
/// Those were the figures of their day; README's Benchmark keeps today's and
/// the comparison under "The allocator".
#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// mimalloc asked as C asks it wherever the layout allows. The `mimalloc`
/// crate's allocator passes every allocation to `mi_malloc_aligned`, whose
/// fast path serves only blocks of up to 1 KiB: a larger one (the futures a
/// request boxes are several KiB each) takes its generic aligned path and is
/// over-allocated, and its free takes the slow path too. Every mimalloc block
/// is aligned to at least a pointer's size, so only a stricter layout needs
/// the aligned calls (mimalloc's own `mi_realloc_aligned` draws the same line).
struct Mimalloc;

/// The alignment every block of `mi_malloc` has.
const PLAIN_ALIGN: usize = std::mem::align_of::<usize>();

type PlainAlloc = unsafe extern "C" fn(usize) -> *mut std::ffi::c_void;
type AlignedAlloc = unsafe extern "C" fn(usize, usize) -> *mut std::ffi::c_void;

impl Mimalloc {
    /// `plain(size)` where every block's alignment is enough, else
    /// `aligned(size, alignment)`.
    ///
    /// # Safety
    /// As for [`std::alloc::GlobalAlloc::alloc`].
    #[inline(always)]
    unsafe fn allocate(
        layout: std::alloc::Layout,
        plain: PlainAlloc,
        aligned: AlignedAlloc,
    ) -> *mut u8 {
        // SAFETY: both take any size; `aligned` any power-of-two alignment,
        // which a `Layout`'s is.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                plain(layout.size()).cast()
            } else {
                aligned(layout.size(), layout.align()).cast()
            }
        }
    }
}

// SAFETY: each call passes the layout's size and, above `PLAIN_ALIGN`, its
// alignment to the mimalloc function that honours both; `mi_free` takes a
// block of either kind; `mi_realloc_aligned` keeps the block's alignment
// (and is `mi_realloc` itself up to `PLAIN_ALIGN`).
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { Self::allocate(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { Self::allocate(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: see the impl.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast() }
    }
}

#[cfg(test)]
mod allocator_tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::Mimalloc;

    /// Sizes on both sides of mimalloc's small-block limit (1 KiB) and of
    /// its size classes, with every alignment from 1 byte to a page.
    fn layouts() -> impl Iterator<Item = Layout> {
        let sizes = [
            1, 7, 8, 9, 16, 24, 40, 48, 100, 1000, 1024, 1025, 1500, 4700, 6800, 70_000,
        ];
        sizes.into_iter().flat_map(|size| {
            (0..=12).map(move |power| Layout::from_size_align(size, 1 << power).unwrap())
        })
    }

    #[test]
    fn every_block_has_its_layouts_alignment_and_keeps_its_bytes() {
        for layout in layouts() {
            // SAFETY: non-zero sizes; each block is written within its size
            // and freed once with the layout it was allocated with.
            unsafe {
                let block = Mimalloc.alloc(layout);
                assert!(!block.is_null(), "{layout:?}");
                assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
                block.write_bytes(0xA5, layout.size());

                let grown_size = layout.size() * 3 + 5;
                let grown = Mimalloc.realloc(block, layout, grown_size);
                assert_eq!(grown as usize % layout.align(), 0, "{layout:?} grown");
                let kept = std::slice::from_raw_parts(grown, layout.size());
                assert!(kept.iter().all(|byte| *byte == 0xA5), "{layout:?} grown");
                Mimalloc.dealloc(
                    grown,
                    Layout::from_size_align(grown_size, layout.align()).unwrap(),
                );

                let zeroed = Mimalloc.alloc_zeroed(layout);
                assert_eq!(zeroed as usize % layout.align(), 0, "{layout:?} zeroed");
                let bytes = std::slice::from_raw_parts(zeroed, layout.size());
                assert!(bytes.iter().all(|byte| *byte == 0), "{layout:?} zeroed");
                Mimalloc.dealloc(zeroed, layout);
            }
        }
    }
}

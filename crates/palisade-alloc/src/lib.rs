//! palisade's global allocator: mimalloc, as the `mimalloc` crate installs it, except that
//! a layout whose alignment mimalloc gives every block anyway goes through mimalloc's plain
//! `mi_malloc`, `mi_zalloc` and `mi_realloc` rather than their `_aligned` forms.
//!
//! Why: mimalloc 3's aligned entry point serves an alignment from its free lists only for
//! blocks up to 1 KiB or of a power-of-two size; any other block (a request's header map, the
//! WAF's list of inputs: a few per request) is over-allocated by the alignment and its
//! pointer moved up, about 200 instructions where `mi_malloc` takes about 60. Every block
//! `mi_malloc` returns is aligned to at least the machine word (its size classes are
//! multiples of it), and on 64-bit targets to 16 bytes from 16 bytes up: mimalloc rounds
//! its classes there to whole 16-byte units (`MI_ALIGN2W`) and asserts the alignment of
//! every block it hands out (`MI_MAX_ALIGN_SIZE`). The tests below check both for every
//! size they try. mimalloc's `debug` and guarded builds, which change this, are not used.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The global allocator: `#[global_allocator] static A: Allocator = Allocator;`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Allocator;

/// The alignment `mi_malloc` guarantees for a block of `size` bytes: the word, and 16 from
/// 16 bytes up on 64-bit targets (where two words make 16).
const fn plain_alignment(size: usize) -> usize {
    let word = std::mem::size_of::<usize>();
    if word == 8 && size >= 16 { 16 } else { word }
}

/// Whether `layout` can be served by mimalloc's plain entry points.
#[inline]
const fn plain(align: usize, size: usize) -> bool {
    align <= plain_alignment(size)
}

// SAFETY (all four methods): each forwards to the mimalloc function for the same operation,
// which returns null on failure as `GlobalAlloc` requires. A layout goes to the plain
// functions only when [`plain`] holds, that is when the alignment it asks for is one every
// block of that size already has; any other layout goes to the `_aligned` functions, as the
// `mimalloc` crate sends every layout. `mi_free` frees blocks from either family, and
// `mi_realloc` keeps a block's alignment guarantee for the new size exactly as `mi_malloc`
// gives it, so [`plain`] is asked of the new size.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: see above.
        unsafe {
            if plain(align, size) {
                mi::mi_malloc(size).cast()
            } else {
                mi::mi_malloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: see above.
        unsafe {
            if plain(align, size) {
                mi::mi_zalloc(size).cast()
            } else {
                mi::mi_zalloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see above; `ptr` came from this allocator.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: see above; `ptr` came from this allocator with `layout`.
        unsafe {
            if plain(align, new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many blocks of each size at once, so that blocks after a page's first are checked.
    #[test]
    fn plain_blocks_all_have_the_alignment_counted_on() {
        let allocator = Allocator;
        for size in 1..=2100 {
            let layout = Layout::from_size_align(size, plain_alignment(size)).expect("layout");
            #[allow(unsafe_code)]
            // SAFETY: a non-zero size; each block is freed once with its own layout.
            unsafe {
                let blocks: Vec<*mut u8> = (0..24).map(|_| allocator.alloc(layout)).collect();
                for &block in &blocks {
                    assert!(!block.is_null());
                    assert_eq!(block as usize % layout.align(), 0, "size {size}");
                }
                for block in blocks {
                    allocator.dealloc(block, layout);
                }
            }
        }
    }

    #[test]
    fn blocks_have_the_alignment_their_layout_asks_for() {
        let allocator = Allocator;
        let aligns = [1, 2, 4, 8, 16, 32, 64, 128, 4096];
        let sizes = (1..=300).chain([1000, 1024, 1025, 1200, 1500, 4095, 70_000, 1 << 22]);
        for size in sizes {
            for align in aligns {
                let layout = Layout::from_size_align(size, align).expect("layout");
                #[allow(unsafe_code)]
                // SAFETY: a non-zero size; each block is written within its size, grown
                // and then shrunk with `realloc` (each time with the layout it had), and
                // freed once.
                unsafe {
                    let block = allocator.alloc(layout);
                    assert!(!block.is_null());
                    assert_eq!(block as usize % align, 0, "size {size}, align {align}");
                    block.write_bytes(0xa5, size);
                    let grown = size * 3 + align;
                    let moved = allocator.realloc(block, layout, grown);
                    assert!(!moved.is_null());
                    assert_eq!(moved as usize % align, 0, "grown {grown}, align {align}");
                    assert_eq!(*moved.add(size - 1), 0xa5, "contents kept");
                    // Shrunk to a size whose plain blocks are less aligned than `align`
                    // (16 bytes to 8, say): the aligned family must serve it.
                    let grown_layout = Layout::from_size_align(grown, align).expect("layout");
                    let shrunk = (size / 2).max(1);
                    let moved = allocator.realloc(moved, grown_layout, shrunk);
                    assert!(!moved.is_null());
                    assert_eq!(moved as usize % align, 0, "shrunk {shrunk}, align {align}");
                    assert_eq!(*moved, 0xa5, "contents kept");
                    allocator.dealloc(moved, Layout::from_size_align(shrunk, align).expect("l"));
                    let zeroed = allocator.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "zeroed {size}, align {align}");
                    assert!((0..size).all(|i| *zeroed.add(i) == 0));
                    allocator.dealloc(zeroed, layout);
                }
            }
        }
    }
}

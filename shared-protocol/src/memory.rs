//! How the party binaries use memory. They allocate with mimalloc (each
//! binary's `#[global_allocator]`): with glibc's malloc every thread that ran
//! argon2 kept its 19 MiB block in its own arena, so a burst of sign-ins left
//! gigabytes behind. mimalloc gives freed memory back to the system, after a
//! delay (a second by default) that it checks only when memory is next
//! allocated or freed, so an idle party kept what it had used. Three settings
//! make it prompt: arenas are committed as they are used, not up front (a
//! compiled-in default, `.cargo/config.toml`, since mimalloc reads its options
//! before `main`); freed memory goes back at once; and the housekeeping loop
//! collects once a second. Measured with `scripts/stress.sh`: idle after a
//! first start 18 MB (45 MB without them), and back to 30 MB after a flood.

#![allow(unsafe_code, reason = "mimalloc's options and collection are C functions, called through FFI")]

/// Positions in mimalloc's `mi_option_e` (v3, which libmimalloc-sys builds by default;
/// `mimalloc.h`), which libmimalloc-sys does not name; the test below checks them against their
/// documented defaults.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once, and arenas (beyond the
/// first, which the compiled-in default covers) are committed as used.
pub fn return_freed_memory_promptly() {
    // SAFETY: setting an option is a plain store in mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// Gives memory freed elsewhere back to the system now: mimalloc checks its
/// delayed purges only when memory is next allocated or freed, and an idle
/// party does little of either. The housekeeping loop calls this every second.
pub fn give_back_freed_memory() {
    // SAFETY: a collection of this thread's heap and the shared arenas, which mimalloc makes thread-safe.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_positions_are_mimallocs() {
        // SAFETY: reading an option.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        // mimalloc v3's defaults (`options.c`), which the test binary keeps, except
        // arena_eager_commit (=2 upstream), which `.cargo/config.toml` compiles in as 0.
        assert_eq!(get(PURGE_DELAY), 1000, "purge_delay (=1000 ms)");
        assert_eq!(get(ARENA_EAGER_COMMIT), 0, "arena_eager_commit, as .cargo/config.toml sets it");
        assert_eq!(get(libmimalloc_sys::mi_option_max_errors), 32, "a named neighbour, four after purge_delay");
    }
}

//! How the party binaries use memory. They allocate with mimalloc (each
//! binary's `#[global_allocator]`): with glibc's malloc every thread that ran
//! argon2 kept its 19 MiB block in its own arena, so a burst of sign-ins left
//! gigabytes behind. mimalloc gives freed memory back to the system after a
//! delay, checked when memory is next allocated or freed. Its default delay
//! (a second) left an idle party holding its start-up memory; no delay at all
//! cost the hot path a page fault and an `madvise` per request (measured with
//! `perf`). A quarter second, with the party's once-a-second housekeeping to
//! trigger the check, returns memory within about a second and keeps requests fast.

/// Positions in mimalloc's `mi_option_e` (v3, which libmimalloc-sys builds by default) (`mimalloc.h`), which
/// libmimalloc-sys does not name; the test below checks them against their
/// documented defaults.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system a quarter second after it is freed,
/// and arenas are committed as they are used, not up front.
pub fn return_freed_memory_promptly() {
    // SAFETY: setting an option is a plain store in mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 250);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_positions_are_mimallocs() {
        // SAFETY: reading an option.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        // The defaults of mimalloc v3 (`options.c`); the test binary keeps them.
        assert_eq!(get(PURGE_DELAY), 1000, "purge_delay (=1000 ms)");
        assert_eq!(get(ARENA_EAGER_COMMIT), 2, "arena_eager_commit (=2)");
        assert_eq!(get(libmimalloc_sys::mi_option_max_errors), 32, "a named neighbour, four after purge_delay");
    }
}

/// mimalloc gives freed memory back to the system (argon2's 19 MiB blocks
/// included), where glibc's arenas keep it: see the README's "Limits".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    // The error in words (it names the party and the cause), not its Debug form.
    match shared_protocol::run_party(&party_a::PARTY).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

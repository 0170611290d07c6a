#[actix_web::main]
async fn main() -> std::io::Result<()> {
    shared_protocol::run_party(&party_b::PARTY).await
}

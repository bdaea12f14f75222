//! ciaolc: command-line client of ciao-launcher-server (see ciaolc(1)).

fn main() {
    std::process::exit(ciao::ciaolc::main());
}

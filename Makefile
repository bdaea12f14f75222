# ciao-launcher (Rust): build, test, install.
#
#   make            build release binaries
#   make test       the full test suite (what CI runs)
#   make demo       server + simulated launcher + a scripted ciaolc session
#   make bench      speed and size figures (reported, never asserted)
#   make layout     regenerate the code layout of ciao-launcher (bench/layout.sh)
#   make install    install binaries, man pages and the systemd unit
#                   (PREFIX, DESTDIR, BINDIR, MANDIR, UNITDIR)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(BINDIR)
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=
CARGO ?= cargo
INSTALL ?= install

BINS = ciao-launcher ciao-launcher-server ciaolc
RELEASE = target/release

.PHONY: all build test demo bench layout install uninstall clean

all: build

build:
	$(CARGO) build --release --bins

test:
	$(CARGO) test
	$(CARGO) build --manifest-path fuzz/Cargo.toml --bins

demo:
	$(CARGO) build --release --bins --examples
	bash examples/demo.sh

bench:
	$(CARGO) build --release --bins --examples
	bash bench/run.sh

layout:
	bash bench/layout.sh

install: build
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	for b in $(BINS); do \
	  if [ -f $(RELEASE)/$$b ]; then $(INSTALL) -m 0755 $(RELEASE)/$$b $(DESTDIR)$(BINDIR)/$$b; fi; \
	done
	for m in man/*.1; do [ -f "$$m" ] && $(INSTALL) -m 0644 "$$m" $(DESTDIR)$(MANDIR)/man1/; done; true
	for m in man/*.8; do [ -f "$$m" ] && $(INSTALL) -m 0644 "$$m" $(DESTDIR)$(MANDIR)/man8/; done; true
	$(INSTALL) -d $(DESTDIR)$(UNITDIR)
	sed 's|@BINDIR@|$(BINDIR)|g' examples/ciao-launcher.service > $(DESTDIR)$(UNITDIR)/ciao-launcher.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/ciao-launcher.service.tmp
	mv $(DESTDIR)$(UNITDIR)/ciao-launcher.service.tmp $(DESTDIR)$(UNITDIR)/ciao-launcher.service

uninstall:
	for b in $(BINS); do rm -f $(DESTDIR)$(BINDIR)/$$b; done
	for m in man/*.1; do rm -f $(DESTDIR)$(MANDIR)/man1/$$(basename $$m); done
	for m in man/*.8; do rm -f $(DESTDIR)$(MANDIR)/man8/$$(basename $$m); done
	rm -f $(DESTDIR)$(UNITDIR)/ciao-launcher.service

clean:
	$(CARGO) clean
	rm -rf fuzz/target

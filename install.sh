#!/usr/bin/env bash
# Installs bgrun for this user, without root: the five commands (run, runs,
# runlog, runrm, job), their bash, zsh and fish completions and their man
# pages. Running it again updates what it installed; --uninstall removes
# exactly that, as listed in its manifest, and never the job store.
#
#   ./install.sh                  build with cargo (release) and install
#   ./install.sh --prefix DIR     commands in DIR/bin, man pages in DIR/share/man
#                                 (default: $CARGO_INSTALL_ROOT, else $CARGO_HOME,
#                                 else ~/.cargo)
#   ./install.sh --no-build DIR   copy the five binaries from DIR (for example
#                                 target/release) instead of running cargo
#   ./install.sh --force          replace files of the same name that this
#                                 script did not install
#   ./install.sh --no-modify-path leave ~/.bashrc, ~/.zshenv and fish's conf.d
#                                 alone (it says what to add instead)
#   ./install.sh --uninstall      remove everything it installed
#
# So that `ssh host run make` finds the commands: a command run over ssh
# gets a shell that is neither interactive nor a login shell. bash reads
# only ~/.bashrc then, and the stock ~/.bashrc returns at its top for such
# shells; zsh reads only ~/.zshenv. So, unless PREFIX/bin is on the
# system's PATH, install.sh puts three marked lines that add PREFIX/bin to
# PATH at the very top of ~/.bashrc (bash) or ~/.zshenv (zsh): the login
# shell's file, made if missing. Fish reads ~/.config/fish/conf.d/*.fish
# in every shell: when fish is the login shell or ~/.config/fish exists,
# install.sh writes conf.d/bgrun.fish, one line adding PREFIX/bin. Both
# are in the manifest: --uninstall takes them out again, and removes a
# bgrun.fish only if its first line is still this script's. A user's own
# bgrun.fish is left alone; --force sets it aside as bgrun.fish.bgrun-saved
# and --uninstall puts it back. PREFIX/bin is single-quoted in both lines,
# so any HOME works.
#
# Where things go (DATA is $XDG_DATA_HOME, else ~/.local/share):
#   PREFIX/bin/NAME                                    the commands
#   PREFIX/share/man/man1/NAME.1                       man pages (man finds them
#                                                      next to PREFIX/bin on PATH)
#   DATA/bash-completion/completions/NAME              bash (bash-completion)
#   DATA/zsh/site-functions/_NAME                      zsh (needs it in fpath)
#   ${XDG_CONFIG_HOME:-~/.config}/fish/completions/NAME.fish   fish
#   DATA/bgrun/installed-files                         the manifest
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
names=(run runs runlog runrm job)

die() { echo "install.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

[ -n "${HOME:-}" ] || die "HOME is not set"
prefix=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}
bin_dir= uninstall= force= modify_path=1
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --no-build) [ $# -ge 2 ] || die "--no-build needs the directory of the built binaries"; bin_dir=$2; shift 2 ;;
    --no-build=*) bin_dir=${1#*=}; shift ;;
    --force) force=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --no-modify-path) modify_path=; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case $prefix in /*) ;; *) prefix=$PWD/$prefix ;; esac

data=${XDG_DATA_HOME:-$HOME/.local/share}
case $data in /*) ;; *) data=$HOME/.local/share ;; esac
config=${XDG_CONFIG_HOME:-$HOME/.config}
case $config in /*) ;; *) config=$HOME/.config ;; esac
bash_dir=${BASH_COMPLETION_USER_DIR:-$data/bash-completion}/completions
zsh_dir=$data/zsh/site-functions
fish_dir=$config/fish/completions
fish_conf=$config/fish/conf.d/bgrun.fish
man_dir=$prefix/share/man/man1
manifest=$data/bgrun/installed-files

# The manifest: one entry a line, "file PATH", "dir PATH" (a directory this
# script created) or "cargo ROOT" (binaries installed by cargo install).
entries=()
if [ -f "$manifest" ]; then
  while IFS= read -r line; do
    [ -n "$line" ] && entries+=("$line")
  done <"$manifest"
fi

listed() { # listed ENTRY: is it in the manifest?
  local e
  for e in "${entries[@]+"${entries[@]}"}"; do [ "$e" = "$1" ] && return 0; done
  return 1
}

# PREFIX/bin quoted for sh (bash, zsh) and for fish, so that any HOME works:
# single quotes, with ' written '\'' for sh and \\ and \' for fish.
sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
fish_quote() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\\\'}"; }

# The first line of conf.d/bgrun.fish: what says the file is this script's.
fish_mark="# bgrun: its commands for fish, ssh commands too (./install.sh --uninstall removes this file)"
fish_ours() { # fish_ours FILE: is it a file this script wrote (its first line)?
  [ -f "$1" ] && [ ! -L "$1" ] && [ "$(head -n 1 -- "$1")" = "$fish_mark" ]
}
exists() { [ -e "$1" ] || [ -L "$1" ]; } # a dangling symlink exists too

# The lines that put PREFIX/bin on PATH for every shell, ssh commands too.
rc_begin="# >>> bgrun: its commands for every shell, ssh commands too (./install.sh --uninstall removes this) >>>"
rc_end="# <<< bgrun <<<"

unmark_rc() { # unmark_rc FILE: remove the marked lines; the file too if that empties it
  local f=$1
  [ -f "$f" ] || return 0
  awk -v b="$rc_begin" -v e="$rc_end" '$0 == b { skip = 1; next } skip && $0 == e { skip = 0; next } !skip' \
    "$f" >"$f.bgrun-tmp" && cat "$f.bgrun-tmp" >"$f" && rm -f -- "$f.bgrun-tmp"
  [ -s "$f" ] || rm -f -- "$f"
}

if [ -n "$uninstall" ]; then
  if [ ${#entries[@]} -eq 0 ]; then
    echo "bgrun: nothing to uninstall (no manifest at $manifest)"
    exit 0
  fi
  for e in "${entries[@]}"; do
    case $e in
      "cargo "*)
        root=${e#cargo }
        if command -v cargo >/dev/null; then
          cargo uninstall --quiet --root "$root" bgrun 2>/dev/null || true
        fi
        # cargo's records of what it installed there, if this script made
        # that directory and they are empty now.
        if listed "dir $root" && [ "$(cat "$root/.crates.toml" 2>/dev/null)" = "[v1]" ] &&
          [ "$(cat "$root/.crates2.json" 2>/dev/null)" = '{"installs":{}}' ]; then
          rm -f -- "$root/.crates.toml" "$root/.crates2.json"
        fi ;;
    esac
  done
  for e in "${entries[@]}"; do
    case $e in "rc "*) unmark_rc "${e#rc }" ;; esac
  done
  files=()
  for e in "${entries[@]}"; do
    case $e in
      # A user's own bgrun.fish (put there since) stays.
      "file "*/fish/conf.d/bgrun.fish) ! fish_ours "${e#file }" || files+=("${e#file }") ;;
      "file "*) files+=("${e#file }") ;;
    esac
  done
  [ ${#files[@]} -eq 0 ] || rm -f -- "${files[@]}"
  # A user's file that --force set aside goes back where it was.
  for e in "${entries[@]}"; do
    case $e in
      "saved "*) f=${e#saved }
        if exists "$f.bgrun-saved" && ! exists "$f"; then mv -- "$f.bgrun-saved" "$f"; fi ;;
    esac
  done
  rm -f -- "$manifest"
  # Directories this script made, deepest first, if nothing else is in them.
  for e in "${entries[@]}"; do
    case $e in "dir "*) printf '%s\n' "${e#dir }" ;; esac
  done | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- | while IFS= read -r d; do
    rmdir -- "$d" 2>/dev/null || true
  done
  echo "bgrun: uninstalled (the job store was left as it was)"
  exit 0
fi

for d in completions/bash completions/zsh completions/fish man; do
  [ -d "$here/$d" ] || die "$here/$d is missing: run this script from the bgrun source tree"
done
if [ -n "$bin_dir" ]; then
  for n in "${names[@]}"; do
    [ -x "$bin_dir/$n" ] || die "$bin_dir/$n: no such executable (--no-build)"
  done
fi

add() { listed "$1" || entries+=("$1"); }

mkdirs() { # mkdirs DIR: mkdir -p, recording each directory it creates
  local d=$1 missing=()
  while [ -n "$d" ] && [ ! -d "$d" ]; do
    missing+=("$d")
    d=${d%/*}
  done
  mkdir -p -- "$1"
  for d in "${missing[@]+"${missing[@]}"}"; do add "dir $d"; done
}

# Fish users (fish the login shell, or a ~/.config/fish this script did
# not make: the completions below make one) get a PATH line of their own.
fish_user=
login_shell=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7)
login_shell=${login_shell:-${SHELL:-}}
if [ "${login_shell##*/}" = fish ] || { [ -d "$config/fish" ] && ! listed "dir $config/fish"; } || listed "file $fish_conf"; then
  fish_user=1
fi

# What goes where: "SOURCE DEST MODE", one a line.
plan=()
for n in "${names[@]}"; do
  [ -z "$bin_dir" ] || plan+=("$bin_dir/$n"$'\t'"$prefix/bin/$n"$'\t'755)
  plan+=("$here/completions/bash/$n"$'\t'"$bash_dir/$n"$'\t'644)
  plan+=("$here/completions/zsh/_$n"$'\t'"$zsh_dir/_$n"$'\t'644)
  plan+=("$here/completions/fish/$n.fish"$'\t'"$fish_dir/$n.fish"$'\t'644)
done
for page in "$here"/man/*.1; do
  plan+=("$page"$'\t'"$man_dir/${page##*/}"$'\t'644)
done

# Never replace a file this script did not put there (unless --force).
clashes=()
for p in "${plan[@]}"; do
  IFS=$'\t' read -r src dest _ <<<"$p"
  if exists "$dest" && ! listed "file $dest" && ! cmp -s "$src" "$dest"; then
    clashes+=("$dest")
  fi
done
if [ ${#clashes[@]} -gt 0 ] && [ -z "$force" ]; then
  printf 'install.sh: %s exists and was not installed by this script\n' "${clashes[@]}" >&2
  die "nothing was changed; move those files away, or pass --force to replace them"
fi

save_manifest() {
  mkdirs "${manifest%/*}"
  printf '%s\n' "${entries[@]}" >"$manifest.tmp"
  mv -f -- "$manifest.tmp" "$manifest"
}

if [ -z "$bin_dir" ]; then
  command -v cargo >/dev/null || die "cargo is not on PATH: install Rust (https://rustup.rs) first"
  mkdirs "$prefix/bin"
  add "cargo $prefix"
  for n in "${names[@]}"; do add "file $prefix/bin/$n"; done
  save_manifest # before cargo, so an interrupted install can still be undone
  cargo install --locked --path "$here" --root "$prefix"
fi

for p in "${plan[@]}"; do
  IFS=$'\t' read -r src dest mode <<<"$p"
  [ -d "${dest%/*}" ] || mkdirs "${dest%/*}"
  add "file $dest"
  # install(1) unlinks the old file first, so a running binary is no obstacle.
  install -m "$mode" -- "$src" "$dest"
done
save_manifest

# Non-interactive shells (`ssh host run make`) get the system's PATH and
# read only ~/.bashrc (bash) or ~/.zshenv (zsh).
case ${login_shell##*/} in
  bash) rc=$HOME/.bashrc ;;
  zsh) rc=${ZDOTDIR:-$HOME}/.zshenv ;;
  *) rc= ;;
esac
case ":/usr/local/bin:/usr/bin:/bin:" in *":$prefix/bin:"*) rc= ;; esac
bin_sh=$(sh_quote "$prefix/bin")
path_line="case \":\$PATH:\" in *:$bin_sh:*) ;; *) PATH=$bin_sh:\$PATH; export PATH ;; esac"
if [ -n "$rc" ] && ! grep -qsxF -- "$rc_begin" "$rc"; then
  if [ -n "$modify_path" ]; then
    { printf '%s\n%s\n%s\n' "$rc_begin" "$path_line" "$rc_end"; cat -- "$rc" 2>/dev/null || true; } >"$rc.bgrun-tmp"
    if [ -f "$rc" ] || [ -L "$rc" ]; then cat "$rc.bgrun-tmp" >"$rc"; rm -f -- "$rc.bgrun-tmp"; else mv -- "$rc.bgrun-tmp" "$rc"; fi
    add "rc $rc"
    save_manifest
    echo "bgrun: added $prefix/bin to PATH at the top of $rc, for ssh commands (ssh host run make)"
  else
    echo "note: for ssh commands (ssh host run make), put this line at the very top of $rc:"
    echo "  $path_line"
  fi
fi

# Fish reads ~/.config/fish/conf.d/*.fish in every shell, ssh commands too.
bin_fish=$(fish_quote "$prefix/bin")
fish_line="contains -- $bin_fish \$PATH; or set -gx PATH $bin_fish \$PATH"
case ":/usr/local/bin:/usr/bin:/bin:" in *":$prefix/bin:"*) fish_user= ;; esac
if [ -n "$fish_user" ]; then
  if [ -z "$modify_path" ]; then
    echo "note: for fish, ssh commands included, put this line in $fish_conf:"
    echo "  $fish_line"
  elif exists "$fish_conf" && ! fish_ours "$fish_conf" && [ -z "$force" ]; then
    echo "note: $fish_conf exists and was not installed by this script: left alone (--force replaces it)"
  else
    [ -d "${fish_conf%/*}" ] || mkdirs "${fish_conf%/*}"
    add "file $fish_conf"
    if exists "$fish_conf" && ! fish_ours "$fish_conf"; then
      # --force: the user's file is set aside (fish reads only *.fish) and
      # --uninstall puts it back.
      add "saved $fish_conf"
      mv -f -- "$fish_conf" "$fish_conf.bgrun-saved"
      echo "bgrun: your $fish_conf is kept as $fish_conf.bgrun-saved (--uninstall puts it back)"
    fi
    save_manifest
    printf '%s\n%s\n' "$fish_mark" "$fish_line" >"$fish_conf.bgrun-tmp"
    mv -f -- "$fish_conf.bgrun-tmp" "$fish_conf"
    echo "bgrun: added $prefix/bin to fish's PATH in $fish_conf, for ssh commands (ssh host run make)"
  fi
fi

echo "bgrun: installed ${names[*]} in $prefix/bin"
echo "  man pages        $man_dir"
echo "  bash completion  $bash_dir"
echo "  zsh completion   $zsh_dir"
echo "  fish completion  $fish_dir"
echo "  manifest         $manifest (./install.sh --uninstall removes what it lists)"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) if [ -n "$rc" ] && grep -qsxF -- "$rc_begin" "$rc"; then
       echo "note: new shells find the commands (the lines at the top of $rc); in this one: export PATH=$bin_sh:\$PATH"
     else
       echo "note: $prefix/bin is not on your PATH; add it (export PATH=$bin_sh:\$PATH)"
     fi ;;
esac
if [ ! -r /usr/share/bash-completion/bash_completion ] && [ ! -r /etc/bash_completion ]; then
  echo "note: bash completion needs the bash-completion package (apt-get install bash-completion)"
fi
# An NTFY_TOPIC exported after the stock ~/.bashrc's early `return`.
if [ -f "$rc" ] && awk '/\*\) *return/ && !r { r = NR } /NTFY_TOPIC=/ && r { bad = 1 } END { exit !bad }' "$rc"; then
  echo "note: ssh commands (ssh host run -n make) do not see an NTFY_TOPIC set below the early return of $rc: move its export to the top, next to the bgrun lines"
fi
if command -v zsh >/dev/null && ! grep -qs "zsh/site-functions" "${ZDOTDIR:-$HOME}/.zshrc"; then
  echo "note: for zsh, add this line to ~/.zshrc before compinit:  fpath=($zsh_dir \$fpath)"
fi

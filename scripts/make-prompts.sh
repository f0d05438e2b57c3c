#!/bin/sh
# Generate the chapter's prompts that Debian's asterisk-core-sounds-en lacks (they belong
# to Asterisk's "extra" sound set, which Debian does not package) with Festival's
# text2wave, as 8 kHz 16-bit mono WAV files, into hookflash's own sounds directory.
#
#   scripts/make-prompts.sh [DIR]     DIR defaults to .venv/share/hookflash/sounds
#
# hookflash searches <python prefix>/share/hookflash/sounds after <astdatadir>/sounds
# (and $HOOKFLASH_SOUNDS_DIR), so prompts made into the venv are found by name, e.g.
# Playback(this-is-yr-wakeup-call). A prompt already present under
# /usr/share/asterisk/sounds/en (e.g. the extra sounds installed by hand) is not made.
# Needs: festival (apt-get install festival festvox-kallpc16k). Idempotent.
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-.venv/share/hookflash/sounds}
SYSTEM=${ASTERISK_SOUNDS:-/usr/share/asterisk/sounds/en}
if ! command -v text2wave >/dev/null 2>&1; then
    echo "make-prompts: text2wave not found; install Debian's festival package" >&2
    exit 1
fi
mkdir -p "$DIR/en"
made=0
while IFS='|' read -r name text; do
    [ -n "$name" ] || continue
    if ls "$SYSTEM/$name".* >/dev/null 2>&1 || [ -s "$DIR/en/$name.wav" ]; then
        continue
    fi
    printf '%s\n' "$text" | text2wave -F 8000 -otype riff -o "$DIR/en/$name.wav.tmp"
    mv "$DIR/en/$name.wav.tmp" "$DIR/en/$name.wav"
    made=$((made + 1))
done <<'PROMPTS'
this-is-yr-wakeup-call|This is your wake up call.
to-confirm-wakeup|To confirm your wake up call,
press-1|press 1.
press-2|press 2.
otherwise|Otherwise,
pls-rcrd-name-at-tone|Please record your name at the tone,
and-prs-pound-whn-finished|and press pound when finished.
PROMPTS
echo "make-prompts: $made prompt(s) made in $DIR/en"

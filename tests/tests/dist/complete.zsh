# Prints, one per line, the words zsh's completion offers at the end of a
# command line: zsh -f complete.zsh FPATH_DIR 'dynport lease --'. An
# interactive zsh in a pseudo-terminal (zpty) sources this file with
# --setup to load the completion from FPATH_DIR, then gets the line and a
# TAB. Its compadd prints what it is given instead of showing a menu, and
# TAB prints <<END>> once the completion is over, so the next keys are
# typed only then (zsh cuts a completion short when keys are waiting).
if [[ $1 == --setup ]]; then
    PS1='' RPROMPT=''
    fpath=($2 $fpath)
    autoload -U compinit && compinit -u -D
    compadd() {
        local -a found
        # Calls that only fill arrays are _arguments at work: let them be.
        if [[ ${(j: :)@} == *(-O|-A|-D)* ]]; then builtin compadd "$@"; return; fi
        builtin compadd -O found "$@"
        print -rl -- "" "${(@)found/#/<<}"
    }
    complete-then-mark() {
        zle complete-word
        print -rl -- "" "<<END>>"
    }
    zle -N complete-then-mark
    bindkey '^I' complete-then-mark
    print -r -- "<<READY>>"
    return
fi
zmodload zsh/zpty || exit 2
zpty shell zsh -f -i
zpty -w shell "source ${(q)0} --setup ${(q)1}"
zpty -r shell ready '*<<READY>>*'
zpty -w -n shell "$2"$'\t'
zpty -r shell out '*<<END>>*'
zpty -w -n shell $'\C-u'
zpty -d shell
out=${out//$'\r'/}
words=(${${(M)${(f)out}:#<<*}#<<})
print -rl -- ${words:#END>>}

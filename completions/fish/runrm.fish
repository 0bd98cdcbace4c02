complete -c runrm -l on -d 'Remove on these hosts over ssh (ssh destinations; local: here; all: local and $RUN_HOSTS)' -r -f -a "(__bgrun_hosts)"
complete -c runrm -l dry-run -d 'Show what would be removed, remove nothing'
complete -c runrm -l force -d 'Also remove jobs with no end recorded that ran on another host or in another pid namespace (state elsewhere), which may still be running there'
complete -c runrm -s h -l help -d 'Print help'
complete -c runrm -s V -l version -d 'Print version'
# Destinations of --on (added by the assets test's generator): what
# `runs --complete-hosts` prints, after the last comma of a list.
function __bgrun_hosts
    set -l pre (commandline -ct | string replace -r '^--on=' '' | string replace -r '[^,]*$' '')
    for h in (runs --complete-hosts 2>/dev/null)
        echo $pre$h
    end
end
# Job ids and names (added by the assets test's generator).
complete -c runrm -n "not __fish_prev_arg_in --on" -f -a "(runs --complete-ids=ended 2>/dev/null)"

complete -c runs -l state -d 'Only jobs in this state (repeatable)' -r -f -a "running\t''
queued\t''
done\t''
failed\t''
killed\t''
stopped\t''
timeout\t''
lost\t''
skipped\t''
elsewhere\t''"
complete -c runs -s n -l last -d 'Only the last N jobs (the newest)' -r
complete -c runs -l on -d 'List these hosts\' jobs over ssh, asked at once (ssh destinations; local: here; all: local and $RUN_HOSTS)' -r -f -a "(__bgrun_hosts)"
complete -c runs -l complete-ids -d 'For the shell completions: print the ids and names of the jobs a command can act on (all, active: running or queued, ended), one a line' -r -f -a "all\t''
active\t''
ended\t''"
complete -c runs -l project -d 'Only the jobs of this directory\'s project (its git top level), as `job list` shows'
complete -c runs -l json -d 'Print a JSON array, one object per job'
complete -c runs -l complete-hosts -d 'For the shell completions: print the destinations `--on` takes (local, all, RUN_HOSTS, the Host names of ~/.ssh/config), one a line'
complete -c runs -s h -l help -d 'Print help'
complete -c runs -s V -l version -d 'Print version'
# Destinations of --on (added by the assets test's generator): what
# `runs --complete-hosts` prints, after the last comma of a list.
function __bgrun_hosts
    set -l pre (commandline -ct | string replace -r '^--on=' '' | string replace -r '[^,]*$' '')
    for h in (runs --complete-hosts 2>/dev/null)
        echo $pre$h
    end
end

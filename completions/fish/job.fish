# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_job_global_optspecs
    string join \n h/help V/version
end

function __fish_job_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_job_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_job_using_subcommand
    set -l cmd (__fish_job_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c job -n "__fish_job_needs_command" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_needs_command" -s V -l version -d 'Print version'
complete -c job -n "__fish_job_needs_command" -f -a "run" -d 'Start a background job (prints its id)'
complete -c job -n "__fish_job_needs_command" -f -a "list" -d 'List jobs of this project (--all: every job)'
complete -c job -n "__fish_job_needs_command" -f -a "status" -d 'Show a job\'s details, or the system status with no ID'
complete -c job -n "__fish_job_needs_command" -f -a "logs" -d 'Show a job\'s output'
complete -c job -n "__fish_job_needs_command" -f -a "stop" -d 'Stop jobs: SIGTERM to everything they started, then SIGKILL'
complete -c job -n "__fish_job_needs_command" -f -a "wait" -d 'Block until jobs end (exit 0 success, 1 failure, 124 timeout)'
complete -c job -n "__fish_job_needs_command" -f -a "retry" -d 'Start a job again with the same command and settings'
complete -c job -n "__fish_job_needs_command" -f -a "clean" -d 'Remove old finished jobs'
complete -c job -n "__fish_job_needs_command" -f -a "queue" -d 'List queues, or set one\'s width, pause or resume it'
complete -c job -n "__fish_job_needs_command" -f -a "install" -d 'Put this machine\'s bgrun on a host over ssh, in its ~/.local/bin (same architecture only)'
complete -c job -n "__fish_job_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c job -n "__fish_job_using_subcommand run" -l name -d 'Refer to the job by this name' -r
complete -c job -n "__fish_job_using_subcommand run" -l timeout -d 'End the job after this long (30s, 5m, 1h30m, 2d): SIGTERM, then SIGKILL; 0: no timeout; with --slurm also its time limit' -r
complete -c job -n "__fish_job_using_subcommand run" -l context -d 'Any JSON value, kept with the job for your own tracking' -r
complete -c job -n "__fish_job_using_subcommand run" -l key -d 'Idempotency key: if a job with this key exists, print its id and start nothing' -r
complete -c job -n "__fish_job_using_subcommand run" -l on -d 'Start it on this host over ssh (a Host of ~/.ssh/config, host or user@host; local: here); prints DEST:ID' -r -f -a "(__bgrun_hosts)"
complete -c job -n "__fish_job_using_subcommand run" -l log-max -d 'Cap the log\'s disk use at SIZE (500K, 10M, 1G; 0: none; default $RUN_LOG_MAX): the oldest output goes first' -r
complete -c job -n "__fish_job_using_subcommand run" -s q -l queue -d 'Wait for a free slot in this queue (job queue NAME --slots N sets its width; default 1)' -r
complete -c job -n "__fish_job_using_subcommand run" -l after -d 'Start only after these jobs have ended done (skipped if one does not)' -r
complete -c job -n "__fish_job_using_subcommand run" -l notify -d 'Send an ntfy notification when the job ends (to TOPIC, or $NTFY_TOPIC)' -r
complete -c job -n "__fish_job_using_subcommand run" -l topic -d 'Notify this ntfy topic when the job ends (implies --notify)' -r
complete -c job -n "__fish_job_using_subcommand run" -l min-duration -d 'With --notify: notify only if the job ran at least this long (default $NTFY_MIN_DURATION)' -r
complete -c job -n "__fish_job_using_subcommand run" -l partition -d 'With --slurm: the partition to run in' -r
complete -c job -n "__fish_job_using_subcommand run" -l cpus -d 'With --slurm: CPUs for the job (sbatch --cpus-per-task)' -r
complete -c job -n "__fish_job_using_subcommand run" -l mem -d 'With --slurm: memory for the job (sbatch --mem: 500M, 4G...)' -r
complete -c job -n "__fish_job_using_subcommand run" -l gpus -d 'With --slurm: GPUs for the job (sbatch --gpus)' -r
complete -c job -n "__fish_job_using_subcommand run" -l sbatch -d 'With --slurm: more sbatch options, as one shell-quoted string (\'--qos=long --account=lab\')' -r
complete -c job -n "__fish_job_using_subcommand run" -l wait -d 'Wait for the job to end; exit as `job wait` does'
complete -c job -n "__fish_job_using_subcommand run" -l follow -d 'With --wait: stream the job\'s log while waiting'
complete -c job -n "__fish_job_using_subcommand run" -l slurm -d 'Submit the job to Slurm (sbatch) instead of running it here; the default when RUN_BACKEND=slurm'
complete -c job -n "__fish_job_using_subcommand run" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand list" -l status -d 'Only jobs in this state (repeatable)' -r -f -a "running\t''
queued\t''
done\t''
failed\t''
killed\t''
stopped\t''
timeout\t''
lost\t''
skipped\t''
elsewhere\t''"
complete -c job -n "__fish_job_using_subcommand list" -s n -l last -d 'Only the last N jobs (the newest)' -r
complete -c job -n "__fish_job_using_subcommand list" -l on -d 'List these hosts\' jobs over ssh, asked at once (ssh destinations; local: here; all: local and $RUN_HOSTS)' -r -f -a "(__bgrun_hosts)"
complete -c job -n "__fish_job_using_subcommand list" -l all -d 'Every job, not only this project\'s'
complete -c job -n "__fish_job_using_subcommand list" -l json -d 'JSON output'
complete -c job -n "__fish_job_using_subcommand list" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand status" -l json -d 'JSON output'
complete -c job -n "__fish_job_using_subcommand status" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand logs" -l tail -d 'Only the last N lines (50 if N is not given)' -r
complete -c job -n "__fish_job_using_subcommand logs" -s f -l follow -d 'Stream new output until the job ends, then exit 0 if it succeeded, 1 if not'
complete -c job -n "__fish_job_using_subcommand logs" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand stop" -l force -d 'SIGKILL at once, no grace period'
complete -c job -n "__fish_job_using_subcommand stop" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand wait" -l timeout -d 'Give up after this long (exit 124; the jobs keep running)' -r
complete -c job -n "__fish_job_using_subcommand wait" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand retry" -l wait -d 'Wait for the new job to end; exit as `job wait` does'
complete -c job -n "__fish_job_using_subcommand retry" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand clean" -l older-than -d 'Remove finished jobs that ended longer ago than this (default 7d)' -r
complete -c job -n "__fish_job_using_subcommand clean" -l on -d 'Remove on these hosts over ssh (ssh destinations; local: here; all: local and $RUN_HOSTS)' -r -f -a "(__bgrun_hosts)"
complete -c job -n "__fish_job_using_subcommand clean" -l all -d 'Remove every job that is not running'
complete -c job -n "__fish_job_using_subcommand clean" -l dry-run -d 'Show what would be removed, remove nothing'
complete -c job -n "__fish_job_using_subcommand clean" -l force -d 'Also remove jobs with no end recorded that ran on another host or in another pid namespace (state elsewhere), which may still be running there'
complete -c job -n "__fish_job_using_subcommand clean" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand queue" -l slots -d 'Run up to N jobs at once (RUN_SLOT is 0 to N-1); narrowing lets running jobs finish' -r
complete -c job -n "__fish_job_using_subcommand queue" -l pause -d 'Start nothing new (running jobs go on)'
complete -c job -n "__fish_job_using_subcommand queue" -l resume -d 'Start again after --pause'
complete -c job -n "__fish_job_using_subcommand queue" -l json -d 'JSON output'
complete -c job -n "__fish_job_using_subcommand queue" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand install" -s h -l help -d 'Print help'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "run" -d 'Start a background job (prints its id)'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "list" -d 'List jobs of this project (--all: every job)'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "status" -d 'Show a job\'s details, or the system status with no ID'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "logs" -d 'Show a job\'s output'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "stop" -d 'Stop jobs: SIGTERM to everything they started, then SIGKILL'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "wait" -d 'Block until jobs end (exit 0 success, 1 failure, 124 timeout)'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "retry" -d 'Start a job again with the same command and settings'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "clean" -d 'Remove old finished jobs'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "queue" -d 'List queues, or set one\'s width, pause or resume it'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "install" -d 'Put this machine\'s bgrun on a host over ssh, in its ~/.local/bin (same architecture only)'
complete -c job -n "__fish_job_using_subcommand help; and not __fish_seen_subcommand_from run list status logs stop wait retry clean queue install help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
# Destinations of --on (added by the assets test's generator): what
# `runs --complete-hosts` prints, after the last comma of a list.
function __bgrun_hosts
    set -l pre (commandline -ct | string replace -r '^--on=' '' | string replace -r '[^,]*$' '')
    for h in (runs --complete-hosts 2>/dev/null)
        echo $pre$h
    end
end
# Job ids and names (added by the assets test's generator).
complete -c job -n "__fish_job_using_subcommand stop wait; and not __fish_prev_arg_in --timeout" -f -a "(runs --complete-ids=active 2>/dev/null)"
complete -c job -n "__fish_job_using_subcommand status logs; and not __fish_prev_arg_in --tail" -f -a "(runs --complete-ids=all 2>/dev/null)"
complete -c job -n "__fish_job_using_subcommand retry" -f -a "(runs --complete-ids=ended 2>/dev/null)"

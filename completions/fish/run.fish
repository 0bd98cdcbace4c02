complete -c run -l topic -d 'Notify this ntfy topic when the job ends (implies -n)' -r
complete -c run -l name -d 'Name the job (default: the command\'s basename)' -r
complete -c run -l min-duration -d 'With -n: notify only if the job ran at least this long (default $NTFY_MIN_DURATION)' -r
complete -c run -l on -d 'Start it on this host over ssh (a Host of ~/.ssh/config, host or user@host; local: here); prints DEST:ID' -r -f -a "(__bgrun_hosts)"
complete -c run -l log-max -d 'Cap the log\'s disk use at SIZE (500K, 10M, 1G; 0: none; default $RUN_LOG_MAX): the oldest output goes first' -r
complete -c run -s q -l queue -d 'Wait for a free slot in this queue (job queue NAME --slots N sets its width; default 1)' -r
complete -c run -l after -d 'Start only after these jobs have ended done (skipped if one does not)' -r
complete -c run -l partition -d 'With --slurm: the partition to run in' -r
complete -c run -l cpus -d 'With --slurm: CPUs for the job (sbatch --cpus-per-task)' -r
complete -c run -l mem -d 'With --slurm: memory for the job (sbatch --mem: 500M, 4G...)' -r
complete -c run -l gpus -d 'With --slurm: GPUs for the job (sbatch --gpus)' -r
complete -c run -l sbatch -d 'With --slurm: more sbatch options, as one shell-quoted string (\'--qos=long --account=lab\')' -r
complete -c run -s n -l notify -d 'Send an ntfy notification when the job ends ($NTFY_TOPIC, or the next argument)'
complete -c run -l slurm -d 'Submit the job to Slurm (sbatch) instead of running it here; the default when RUN_BACKEND=slurm'
complete -c run -s h -l help -d 'Print help'
complete -c run -s V -l version -d 'Print version'
# Destinations of --on (added by the assets test's generator): what
# `runs --complete-hosts` prints, after the last comma of a list.
function __bgrun_hosts
    set -l pre (commandline -ct | string replace -r '^--on=' '' | string replace -r '[^,]*$' '')
    for h in (runs --complete-hosts 2>/dev/null)
        echo $pre$h
    end
end

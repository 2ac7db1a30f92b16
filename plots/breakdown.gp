# plots/breakdown.gp — stacked time per phase, one bar per results row.
# Variables (set by moesim with -e): datafile (results CSV), outfile, fmt (png|svg),
# phases (space-separated column names; default the MoE layer's dispatch/experts/combine),
# label (column for the x tics; default the first column).
if (!exists("phases")) phases = "dispatch_us experts_us combine_us"
if (!exists("label")) label = 1
if (fmt eq "svg") { set terminal svg size 800,500 dynamic font "sans,11" } else { set terminal pngcairo size 800,500 font "sans,10" }
set output outfile
set termoption noenhanced
set datafile separator ","
set key autotitle columnhead outside right
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set ylabel "time (us)"
set title "Time per phase"
set grid ytics
set yrange [0:*]
plot for [i=1:words(phases)] datafile using (column(word(phases, i))):xtic(label) title word(phases, i)

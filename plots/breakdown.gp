# plots/breakdown.gp — stacked time per phase, one bar per results row.
# Variables (moesim sets them with -e):
#   datafile  the table: a results CSV (sep='comma', the default) or the tab-separated table moesim
#             arranges for a sweep (sep='tab': a label column, then one column per phase)
#   outfile, fmt  where to draw, and png|svg
#   phases    space-separated phase column names (default: the MoE layer's dispatch/experts/combine)
#   label     column (number or name) for the x tics (default: the first column)
#   sep       'comma' or 'tab'
#   figtitle, xlabel, ylabel  title and axis labels (defaults: "Time per phase", none, "time (us)")
#   rotate    1 to slant the x tics (many bars)
if (!exists("phases")) phases = "dispatch_us experts_us combine_us"
if (!exists("label")) label = 1
if (!exists("sep")) sep = "comma"
if (!exists("figtitle")) figtitle = "Time per phase"
if (!exists("xlabel")) xlabel = ""
if (!exists("ylabel")) ylabel = "time (us)"
if (!exists("rotate")) rotate = 0
if (fmt eq "svg") { set terminal svg size 800,500 dynamic font "sans,11" } else { set terminal pngcairo size 800,500 font "sans,10" }
set output outfile
set termoption noenhanced
if (sep eq "tab") { set datafile separator tab } else { set datafile separator comma }
set key autotitle columnhead outside right noenhanced
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set title figtitle noenhanced
if (rotate) { set xtics rotate by -30 noenhanced } else { set xtics noenhanced }
set grid ytics
set yrange [0:*]
plot for [i=1:words(phases)] datafile using (column(word(phases, i))):xtic(label) title word(phases, i)

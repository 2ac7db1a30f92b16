# plots/whatif.gp — what-if bars: the gain of each change, clustered by series (training, decode...).
# Variables (moesim sets them with -e):
#   datafile  data arranged by moesim, tab-separated: a header "label<TAB>series...", then one row
#             per what-if: its label, then the value of each series ('-' where missing)
#   outfile, fmt  where to draw, and png|svg
#   ncols     number of series columns
#   figtitle, xlabel, ylabel  title and axis labels
if (fmt eq "svg") { set terminal svg size 900,500 dynamic font "sans,11" } else { set terminal pngcairo size 900,500 font "sans,10" }
set output outfile
set datafile separator tab
set datafile missing "-"
set title figtitle noenhanced
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set key noenhanced outside right autotitle columnhead
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set xtics rotate by -30 noenhanced
set grid ytics
set yrange [0:*]
plot for [i=2:ncols+1] datafile using i:xtic(1)

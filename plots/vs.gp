# plots/vs.gp — a result against a swept axis, one line per series: the throughput_vs and
# step_time_vs figures of `moesim run` / `moesim plot`.
# Variables (moesim sets them with -e):
#   datafile     data arranged by moesim, tab-separated: one block per series (blocks separated by
#                two blank lines), each opening with a header line whose first field is the series
#                title; columns: x (a number, or the category's index), y, the x tic label
#   outfile, fmt where to draw, and png|svg
#   figtitle     title
#   xlabel, ylabel  axis labels (column names)
#   nseries      number of blocks
#   categorical  1: x names categories (tics from column 3); 0: x is a number
#   logx         1: log2 x axis (numeric x spanning a factor of 8 or more)
if (fmt eq "svg") { set terminal svg size 800,500 dynamic font "sans,11" } else { set terminal pngcairo size 800,500 font "sans,10" }
set output outfile
set datafile separator tab
set title figtitle noenhanced
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set key noenhanced outside right
set grid
set yrange [0:*]
if (logx) { set logscale x 2 }
if (categorical) {
  set xtics rotate by -30
  set offsets 0.3, 0.3, 0, 0
  plot for [i=0:nseries-1] datafile index i using 1:2:xtic(3) with linespoints lw 2 pt 7 title columnheader(1)
} else {
  set offsets graph 0.02, graph 0.02, 0, 0
  plot for [i=0:nseries-1] datafile index i using 1:2 with linespoints lw 2 pt 7 title columnheader(1)
}

# plots/pareto.gp — cost against time for every option, and the Pareto front (the options no other
# option beats on both).
# Variables (moesim sets them with -e):
#   datafile  data arranged by moesim, tab-separated blocks (two blank lines apart), each opening
#             with a header whose first field is its title; columns: time, cost, label. Blocks
#             0..nseries-1 are the options by series; block nseries is the front, by time.
#   outfile, fmt  where to draw, and png|svg
#   nseries   number of option blocks
#   figtitle, xlabel, ylabel  title and axis labels
if (fmt eq "svg") { set terminal svg size 800,550 dynamic font "sans,11" } else { set terminal pngcairo size 800,550 font "sans,10" }
set output outfile
set datafile separator tab
set title figtitle noenhanced
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set key noenhanced outside right
set grid
set offsets graph 0.05, graph 0.15, graph 0.1, graph 0.05
plot for [i=0:nseries-1] datafile index i using 1:2 with points pt 7 ps 1.4 title columnheader(1), \
     datafile index nseries using 1:2 with linespoints lw 2 lc rgb "black" pt 6 ps 2.2 title columnheader(1), \
     datafile index nseries using 1:2:3 with labels left offset 1,0.8 font ",8" noenhanced notitle

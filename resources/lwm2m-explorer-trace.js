/* The device explorer's Trace panel: the server's CoAP trace (GET lwm2m/servers/<id>/trace) and
 * its new entries as they come (RED.comms lwm2m/trace/<server>, in batches), filtered by endpoint.
 * A row per CoAP message: time, direction, device, type, code, message id, token, path, format,
 * size; a click shows its options and decoded payload. While the server keeps no trace, the panel
 * offers to start one (lwm2m-server.write). The editor may load it before or after
 * lwm2m-explorer.js: the panel waits in window.LwM2MExplorerPanels until the tab's script takes it. */
(function () {
  if (window.LwM2MExplorerTrace) return;
  var text = function (key, substitutions) {
    return window.LwM2MExplorer.text(key, substitutions);
  };

  /** at most this many rows are shown: the oldest go first */
  var SHOWN = 1000;
  /** the trace size a Start proposes */
  var DEFAULT_SIZE = 1000;

  function clock(time) {
    var date = new Date(time);
    var pad = function (n, width) {
      return String(n).padStart(width || 2, '0');
    };
    return pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds()) + '.' + pad(date.getMilliseconds(), 3);
  }

  /** The short line of a message: its path (or location), its format, the block it carries. */
  function summary(entry) {
    var options = entry.options || {};
    var parts = [];
    if (options['Uri-Path'] !== undefined) parts.push(options['Uri-Path']);
    if (options['Location-Path'] !== undefined) parts.push('→ ' + options['Location-Path']);
    if (options.Observe !== undefined) parts.push('Observe ' + options.Observe);
    if (options['Content-Format'] !== undefined) parts.push(String(options['Content-Format']));
    else if (options.Accept !== undefined) parts.push('Accept ' + options.Accept);
    ['Block1', 'Block2'].forEach(function (name) {
      var block = options[name];
      if (block && typeof block === 'object') parts.push(name + ' ' + block.num + (block.more ? '+' : '') + '/' + block.size);
    });
    if (entry.malformed) parts.push(entry.malformed);
    return parts.join('  ');
  }

  function who(entry) {
    return entry.endpoint || (entry.peer ? entry.peer.address + ':' + entry.peer.port : '');
  }

  function tracePanel(context) {
    var element = $('<div class="lwm2m-x-panel lwm2m-x-trace"></div>');
    var bar = $('<div class="lwm2m-x-bar"></div>').appendTo(element);
    var filterInput = $('<input type="text" class="lwm2m-x-trace-filter">').attr('placeholder', text('trace.filter')).appendTo(bar);
    var count = $('<span class="lwm2m-x-trace-count"></span>').appendTo(bar);
    var clearButton = $('<button type="button" class="red-ui-button red-ui-button-small lwm2m-x-trace-clear"></button>')
      .attr('title', text('trace.clear'))
      .append('<i class="fa fa-trash"></i>')
      .appendTo(bar);
    var stopButton = $('<button type="button" class="red-ui-button red-ui-button-small lwm2m-x-trace-stop"></button>')
      .attr('title', text('trace.stop'))
      .append('<i class="fa fa-stop"></i>')
      .appendTo(bar);
    var off = $('<div class="lwm2m-x-form lwm2m-x-trace-off"></div>').appendTo(element);
    $('<div class="lwm2m-x-hint"></div>').text(text('trace.off')).appendTo(off);
    var sizeField = $('<label class="lwm2m-x-field"></label>').appendTo(off);
    $('<span></span>').text(text('trace.size')).appendTo(sizeField);
    var sizeInput = $('<input type="number" min="1" max="100000" class="lwm2m-x-trace-size">').val(DEFAULT_SIZE).appendTo(sizeField);
    var startButton = $('<button type="button" class="red-ui-button red-ui-button-small lwm2m-x-trace-start"></button>')
      .append('<i class="fa fa-play"></i> ', $('<span></span>').text(text('trace.start')))
      .appendTo($('<div class="lwm2m-x-form-buttons"></div>').appendTo(off));
    var problem = $('<div class="lwm2m-x-error lwm2m-x-trace-error"></div>').hide().appendTo(element);
    var list = $('<div class="lwm2m-x-trace-list"></div>').appendTo(element);
    var empty = $('<div class="lwm2m-x-empty"></div>').text(text('trace.empty')).appendTo(element);
    var serverId = null;
    var size = 0;
    var visible = false;
    var handler = null;
    /** the latest load: an older answer (say, unfiltered and larger) arriving late is dropped */
    var loading = 0;

    function filterValue() {
      return String(filterInput.val() || '').trim();
    }
    function matches(entry) {
      var wanted = filterValue();
      return wanted === '' || entry.endpoint === wanted;
    }

    function row(entry) {
      var line = $('<div class="lwm2m-x-row lwm2m-x-trace-row"></div>').addClass('lwm2m-x-trace-' + entry.direction);
      $('<span class="lwm2m-x-trace-time"></span>').text(clock(entry.time)).appendTo(line);
      $('<i class="fa"></i>')
        .addClass(entry.direction === 'in' ? 'fa-arrow-left' : 'fa-arrow-right')
        .attr('title', text(entry.direction === 'in' ? 'trace.in' : 'trace.out'))
        .appendTo(line);
      $('<span class="lwm2m-x-trace-who"></span>').text(who(entry)).attr('title', entry.identity ? text('trace.identity', { identity: entry.identity }) : '').appendTo(line);
      $('<span class="lwm2m-x-trace-type"></span>').text(entry.type || '?').appendTo(line);
      $('<span class="lwm2m-x-trace-code"></span>').text(entry.code || '').appendTo(line);
      $('<span class="lwm2m-x-meta lwm2m-x-trace-summary"></span>').text(summary(entry)).appendTo(line);
      $('<span class="lwm2m-x-trace-size"></span>').text(entry.size + ' B').appendTo(line);
      var wrapper = $('<div class="lwm2m-x-trace-entry"></div>').append(line);
      var details = null;
      line.on('click', function () {
        if (details) {
          details.remove();
          details = null;
          return;
        }
        var shown = {
          messageId: entry.messageId,
          token: entry.token,
          peer: entry.peer,
          identity: entry.identity,
          options: entry.options,
          payload: entry.payload,
          malformed: entry.malformed,
        };
        details = $('<pre class="lwm2m-x-linklist lwm2m-x-trace-details"></pre>').text(JSON.stringify(shown, null, 2)).appendTo(wrapper);
      });
      return wrapper;
    }

    function append(entries) {
      var atBottom = list[0].scrollHeight - list.scrollTop() - list.innerHeight() < 20;
      entries.filter(matches).forEach(function (entry) {
        list.append(row(entry));
      });
      var rows = list.children();
      if (rows.length > SHOWN) rows.slice(0, rows.length - SHOWN).remove();
      if (atBottom) list.scrollTop(list[0].scrollHeight);
      show();
    }

    function show() {
      var rows = list.children().length;
      count.text(text('trace.count', { count: rows }));
      off.toggle(serverId !== null && size === 0);
      // starting, stopping and clearing need lwm2m-server.write
      var allowed = window.LwM2MExplorer.canChange();
      startButton.prop('disabled', !allowed);
      stopButton.toggle(size > 0).prop('disabled', !allowed);
      clearButton.toggle(size > 0).prop('disabled', !allowed);
      empty.toggle(rows === 0 && size > 0);
    }

    function fail(xhr) {
      problem.text(context.errorText(xhr)).show();
    }

    function load() {
      list.empty();
      problem.hide();
      if (!serverId || !visible) return show();
      var id = serverId;
      var mine = ++loading;
      var query = '?limit=' + SHOWN + (filterValue() ? '&endpoint=' + encodeURIComponent(filterValue()) : '');
      context
        .api('GET', 'lwm2m/servers/' + encodeURIComponent(id) + '/trace' + query)
        .done(function (body) {
          if (id !== serverId || mine !== loading) return;
          size = body.size;
          list.empty();
          append(body.entries);
          list.scrollTop(list[0].scrollHeight);
        })
        .fail(fail);
    }

    function setSize(next, clear) {
      problem.hide();
      context
        .api('POST', 'lwm2m/servers/' + encodeURIComponent(serverId) + '/trace', { size: next, clear: clear === true })
        .done(function (body) {
          size = body.size;
          // what the server keeps now (a stopped trace keeps nothing)
          load();
        })
        .fail(fail);
    }

    startButton.on('click', function () {
      var wanted = Number(sizeInput.val());
      if (!Number.isInteger(wanted) || wanted < 1 || wanted > 100000) return problem.text(text('trace.badSize')).show();
      setSize(wanted);
    });
    stopButton.on('click', function () {
      setSize(0);
    });
    clearButton.on('click', function () {
      setSize(size, true);
    });
    // the endpoint typed: the kept entries of that device, once typing pauses
    if (typeof filterInput.searchBox === 'function') filterInput.searchBox({});
    var filtered = '';
    var typing = null;
    filterInput.on('input change keyup', function () {
      clearTimeout(typing);
      typing = setTimeout(function () {
        if (filterValue() === filtered) return;
        filtered = filterValue();
        load();
      }, 300);
    });

    function follow(id) {
      if (handler) RED.comms.unsubscribe(handler.topic, handler.fn);
      handler = null;
      if (!id) return;
      handler = {
        topic: 'lwm2m/trace/' + id,
        fn: function (topic, batch) {
          if (id === serverId && visible && batch && Array.isArray(batch.entries)) append(batch.entries);
        },
      };
      RED.comms.subscribe(handler.topic, handler.fn);
    }

    return {
      element: element,
      server: function (id) {
        if (id === serverId) return;
        serverId = id;
        size = 0;
        follow(id);
        load();
      },
      reload: load,
      show: function () {
        visible = true;
        load();
      },
      hide: function () {
        visible = false;
      },
    };
  }

  window.LwM2MExplorerTrace = tracePanel;
  var panel = { id: 'trace', icon: 'fa-exchange', create: tracePanel };
  if (window.LwM2MExplorer) window.LwM2MExplorer.addPanel(panel);
  else (window.LwM2MExplorerPanels = window.LwM2MExplorerPanels || []).push(panel);
})();
